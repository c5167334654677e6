namespace FinQLoRA.Inference.Pipeline;

/// <summary>Contiguous split of a model's decoder layers over pipeline stages (see <see cref="PipelinePlanner"/>).</summary>
public sealed record PipelinePlan(IReadOnlyList<PipelineStage> Stages)
{
    public int Count => Stages.Count;
    public PipelineStage First => Stages[0];
    public PipelineStage Last => Stages[^1];

    /// <summary>The largest stage's parameter count over the mean: 1 is a perfect balance.</summary>
    public double Imbalance => Stages.Max(s => s.ParameterCount) / Stages.Average(s => (double)s.ParameterCount);

    public override string ToString() =>
        string.Join(" | ", Stages.Select(s => $"stage {s.Index}: layers {s.FirstLayer}-{s.EndLayer - 1}, {s.ParameterCount / 1e6:F1}M params"));
}
