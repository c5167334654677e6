using System.Text.Json.Nodes;

namespace FinQLoRA.Training;

/// <summary>One evaluation during training: loss on all held-out examples, and the task metric on a sample of them
/// (null when no sample is generated).</summary>
public sealed record EvalResult(int Step, double Loss, double? Accuracy, double? F1, int Examples, int Generated)
{
    /// <summary>The source this result is for, in a task-family run's per-task list.</summary>
    public string? Name { get; init; }

    /// <summary>Per source, when the run trains on several.</summary>
    public IReadOnlyList<EvalResult>? Tasks { get; init; }

    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["step"] = Step, ["eval_loss"] = Loss, ["eval_accuracy"] = Accuracy, ["eval_f1"] = F1,
            ["eval_examples"] = Examples, ["eval_generated"] = Generated,
        };
        if (Tasks != null)
        {
            var tasks = new JsonObject();
            foreach (var t in Tasks) { var j = t.ToJson(); j.Remove("step"); tasks[t.Name!] = j; }
            o["tasks"] = tasks;
        }
        return o;
    }

    public string Format() =>
        FormattableString.Invariant($"eval at step {Step} | eval_loss {Loss:F4}{(Accuracy is double a ? $" | accuracy {a:P1}" : "")}{(F1 is double f ? $" | f1 {f:F3}" : "")} ({Examples} examples{(Generated > 0 ? $", {Generated} generated" : "")})") +
        string.Concat((Tasks ?? []).Select(t => FormattableString.Invariant($" | {t.Name}: loss {t.Loss:F4}{(t.Accuracy is double ta ? $", accuracy {ta:P1}" : "")}")));

    /// <summary>The value of <paramref name="metric"/> (eval_loss, accuracy, f1).</summary>
    public double? Value(string metric) => metric switch
    {
        "eval_loss" => Loss,
        "accuracy" => Accuracy,
        "f1" => F1,
        _ => throw new ArgumentException($"unknown metric '{metric}'", nameof(metric)),
    };
}
