using System.Text.Json.Nodes;

namespace FinQLoRA.Training;

/// <summary>
/// The best evaluation so far by <c>metric_for_best</c> (eval_loss: lower is better; accuracy, f1: higher), and how
/// many evaluations have passed without improving on it, for <c>save_best</c> and <c>early_stopping_patience</c>.
/// Saved in every checkpoint, so a resumed run keeps its best-so-far and its patience count.
/// </summary>
public sealed class BestCheckpoint(string metric, int patience)
{
    public const string FolderName = "best";

    public string Metric { get; } = metric;
    public double? Value { get; private set; }
    public int Step { get; private set; }
    public int EvalsWithoutImprovement { get; private set; }

    private bool LowerIsBetter => Metric == "eval_loss";

    /// <returns>whether <paramref name="result"/> is the new best</returns>
    public bool Offer(EvalResult result)
    {
        double? v = result.Value(Metric);
        if (v is not double value)
            throw new UserInputException($"metric_for_best = {Metric} needs the task metric: set eval_samples > 0");
        bool better = Value is not double best || (LowerIsBetter ? value < best : value > best);
        if (better) (Value, Step, EvalsWithoutImprovement) = (value, result.Step, 0);
        else EvalsWithoutImprovement++;
        return better;
    }

    /// <summary>Early stopping: <c>early_stopping_patience</c> evaluations in a row without improvement.</summary>
    public bool ShouldStop => patience > 0 && EvalsWithoutImprovement >= patience;

    public JsonObject ToJson() => new()
    {
        ["metric"] = Metric, ["value"] = Value, ["step"] = Step, ["evals_without_improvement"] = EvalsWithoutImprovement,
    };

    public void Load(JsonNode? json)
    {
        if (json is not JsonObject o || o["metric"]?.GetValue<string>() != Metric) return;
        Value = o["value"]?.GetValue<double>();
        Step = o["step"]?.GetValue<int>() ?? 0;
        EvalsWithoutImprovement = o["evals_without_improvement"]?.GetValue<int>() ?? 0;
    }
}
