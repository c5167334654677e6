using FinQLoRA.Data.Tasks;

namespace FinQLoRA.Evaluation;

/// <summary>
/// Scores (target, output) pairs for a task according to its <see cref="MetricKind"/>:
/// classification by the earliest label (<see cref="LabelMatcher"/>), exact match on trimmed text,
/// numeric match (<see cref="NumericAnswer"/>), element-wise tag lists, or token F1 for free text.
/// </summary>
public static class TaskScorer
{
    public static ScoreResult Score(string task, IReadOnlyList<(string Target, string Output)> pairs) => Score(TaskRegistry.Get(task), pairs);

    public static ScoreResult Score(TaskDefinition task, IReadOnlyList<(string Target, string Output)> pairs) => task.Metric switch
    {
        MetricKind.Classification => Classification(task, pairs),
        MetricKind.ExactMatch => ByClass(task.Name, pairs, p => p.Target.Trim(), p => p.Output.Trim()),
        MetricKind.NumericMatch => ByClass(task.Name, pairs, p => NumericAnswer.Canonical(p.Target), p => NumericAnswer.Prediction(p.Target, p.Output)),
        MetricKind.TagList => TagLists(task.Name, pairs),
        MetricKind.TextSimilarity => Text(task.Name, pairs),
        _ => throw new InvalidOperationException($"no scorer for {task.Metric}"),
    };

    private static ScoreResult Classification(TaskDefinition task, IReadOnlyList<(string Target, string Output)> pairs)
    {
        var map = task.ScoringLabelMap();
        string TargetClass((string Target, string Output) p) =>
            map.TryGetValue(p.Target.Trim(), out var cls) ? cls
            : throw new UserInputException($"{task.Name}: target '{p.Target}' is not one of the task's labels ({string.Join("/", map.Keys)})");
        return ByClass(task.Name, pairs, TargetClass, p => LabelMatcher.Match(p.Output, map));
    }

    private static ScoreResult ByClass(string task, IReadOnlyList<(string Target, string Output)> pairs,
        Func<(string Target, string Output), string> truthOf, Func<(string Target, string Output), string> predictionOf)
    {
        var truth = pairs.Select(truthOf).ToList();
        var predicted = pairs.Select(predictionOf).Select(p => p.Length == 0 ? LabelMatcher.Unmatched : p).ToList();
        return Result(task, truth, predicted, pairs.Count);
    }

    /// <summary>Target and output split on commas and trimmed (a leading "us-gaap:" dropped); the output list is
    /// padded with empty answers or truncated to the target's length; elements are pooled over all examples.</summary>
    private static ScoreResult TagLists(string task, IReadOnlyList<(string Target, string Output)> pairs)
    {
        var truth = new List<string>();
        var predicted = new List<string>();
        foreach (var (target, output) in pairs)
        {
            var t = SplitTags(target);
            var o = SplitTags(output);
            for (int i = 0; i < t.Count; i++)
            {
                truth.Add(t[i]);
                predicted.Add(i < o.Count && o[i].Length > 0 ? o[i] : LabelMatcher.Unmatched);
            }
        }
        return Result(task, truth, predicted, pairs.Count);
    }

    private static List<string> SplitTags(string text) =>
        text.Split(',').Select(s => s.Trim()).Select(s => s.StartsWith("us-gaap:", StringComparison.OrdinalIgnoreCase) ? s[8..].Trim() : s).ToList();

    private static ScoreResult Result(string task, List<string> truth, List<string> predicted, int n)
    {
        int correct = truth.Where((t, i) => t == predicted[i]).Count();
        double accuracy = truth.Count == 0 ? 0 : (double)correct / truth.Count;
        return new ScoreResult(task, n, accuracy, WeightedF1.Compute(truth, predicted), null, predicted.Count(p => p == LabelMatcher.Unmatched));
    }

    private static ScoreResult Text(string task, IReadOnlyList<(string Target, string Output)> pairs)
    {
        if (pairs.Count == 0) return new ScoreResult(task, 0, 0, null, 0, 0);
        double exact = pairs.Count(p => TokenF1.ExactMatch(p.Target, p.Output)) / (double)pairs.Count;
        double f1 = pairs.Average(p => TokenF1.Compute(p.Target, p.Output));
        return new ScoreResult(task, pairs.Count, exact, null, f1, pairs.Count(p => p.Output.Trim().Length == 0));
    }
}
