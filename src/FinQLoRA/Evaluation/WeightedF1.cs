namespace FinQLoRA.Evaluation;

/// <summary>
/// scikit-learn's <c>f1_score(y_true, y_pred, average="weighted")</c>: per class F1 = 2·TP / (2·TP + FP + FN)
/// (0 when the class is never predicted nor true: sklearn's zero_division=0), averaged with the class's
/// support in y_true as weight. Classes that occur only among predictions have weight 0.
/// </summary>
public static class WeightedF1
{
    public static double Compute(IReadOnlyList<string> truth, IReadOnlyList<string> predicted)
    {
        if (truth.Count != predicted.Count) throw new ArgumentException($"{truth.Count} targets but {predicted.Count} predictions");
        if (truth.Count == 0) return 0;
        var support = new Dictionary<string, int>(StringComparer.Ordinal);
        var predictedCount = new Dictionary<string, int>(StringComparer.Ordinal);
        var truePositives = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < truth.Count; i++)
        {
            support[truth[i]] = support.GetValueOrDefault(truth[i]) + 1;
            predictedCount[predicted[i]] = predictedCount.GetValueOrDefault(predicted[i]) + 1;
            if (truth[i] == predicted[i]) truePositives[truth[i]] = truePositives.GetValueOrDefault(truth[i]) + 1;
        }
        double sum = 0;
        foreach (var (label, n) in support)
        {
            int tp = truePositives.GetValueOrDefault(label);
            int fp = predictedCount.GetValueOrDefault(label) - tp;
            int fn = n - tp;
            double f1 = tp == 0 ? 0 : 2.0 * tp / (2.0 * tp + fp + fn);
            sum += n * f1;
        }
        return sum / truth.Count;
    }
}
