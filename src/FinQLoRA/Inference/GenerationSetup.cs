using FinQLoRA.Models;

namespace FinQLoRA.Inference;

/// <summary>
/// What eval, generate and serve ask for before they generate: a model path and how to load it, adapters to put on it
/// (name and folder), and whether to split the layers over <see cref="PipelineStages"/> MPI ranks.
/// <see cref="Validate"/> runs before anything loads; <see cref="GenerationSession.Open"/> loads.
/// </summary>
public sealed record GenerationSetup(string ModelPath, ModelLoadOptions Load)
{
    public IReadOnlyList<(string Name, string Dir)> Adapters { get; init; } = [];
    public int PipelineStages { get; init; } = 1;
    public int MicroBatches { get; init; } = 1;

    /// <summary>The CLI command a message tells the user to rerun under mpirun ("eval", "generate").</summary>
    public string Command { get; init; } = "generate";

    public void Validate()
    {
        if (PipelineStages < 1) throw new UserInputException($"--pipeline-stages must be at least 1 (got {PipelineStages})");
        if (MicroBatches < 1) throw new UserInputException($"--micro-batches must be at least 1 (got {MicroBatches})");
        if (PipelineStages > 1 && Adapters.Count > 0)
            throw new UserInputException("--adapter is not supported with --pipeline-stages yet; merge the adapter (finqlora merge) and use the merged model");
        foreach (var (name, dir) in Adapters)
            if (!Directory.Exists(dir)) throw new UserInputException($"--adapter {name}={dir}: adapter folder not found");
    }
}
