using System.Globalization;

namespace FinQLoRA.Evaluation;

/// <summary>
/// Joins run results into comparison tables: one row per configuration (model, quantization, rank or base),
/// one column per task. When a configuration was evaluated on a task more than once, the last result read wins.
/// </summary>
public sealed class Report
{
    private readonly List<RunResult> _results;

    public Report(IEnumerable<RunResult> results)
    {
        _results = results.GroupBy(r => (r.Configuration, r.Task)).Select(g => g.Last()).ToList();
    }

    public IReadOnlyList<RunResult> Results => _results;

    public IReadOnlyList<string> Tasks => _results.Select(r => r.Task).Distinct().Order(StringComparer.Ordinal).ToList();

    /// <summary>Base rows first, then by model, quantization and rank.</summary>
    public IReadOnlyList<string> Configurations => _results
        .OrderBy(r => r.FineTuned).ThenBy(r => r.Model, StringComparer.Ordinal).ThenBy(r => r.QuantizationBits ?? 16).ThenBy(r => r.Rank ?? 0)
        .Select(r => r.Configuration).Distinct().ToList();

    public ReportTable Accuracy() => ByTask("Accuracy (%)", r => r.Accuracy);

    public ReportTable WeightedF1() => ByTask("Weighted F1 (%)", r => r.WeightedF1);

    /// <summary>Per configuration: evaluation batch size, examples evaluated, mean seconds per example (weighted by n), peak memory,
    /// fine-tuning device hours and adapter size (the largest over its tasks: adapters are per task).</summary>
    public ReportTable Cost()
    {
        var rows = Configurations.Select(cfg =>
        {
            var rs = _results.Where(r => r.Configuration == cfg).ToList();
            int n = rs.Sum(r => r.N);
            double secondsPerExample = n == 0 ? 0 : rs.Sum(r => r.SecondsPerExample * r.N) / n;
            return (IReadOnlyList<string>)
            [
                cfg,
                string.Join("/", rs.Select(r => r.BatchSize).Distinct().Order()),
                n.ToString(CultureInfo.InvariantCulture),
                secondsPerExample.ToString("0.000", CultureInfo.InvariantCulture),
                (rs.Max(r => r.PeakMemoryBytes) / (double)(1L << 30)).ToString("0.00", CultureInfo.InvariantCulture),
                rs.Sum(r => r.DeviceHours).ToString("0.0000", CultureInfo.InvariantCulture),
                (rs.Max(r => r.AdapterBytes) / 1e6).ToString("0.000", CultureInfo.InvariantCulture),
            ];
        }).ToList();
        return new ReportTable("Cost", ["configuration", "batch size", "examples", "s/example", "peak memory (GiB)", "fine-tuning device hours", "adapter (MB)"], rows);
    }

    private ReportTable ByTask(string title, Func<RunResult, double?> value)
    {
        var tasks = Tasks;
        var rows = Configurations.Select(cfg => (IReadOnlyList<string>)
            [cfg, .. tasks.Select(t => ReportTable.Percent(_results.FirstOrDefault(r => r.Configuration == cfg && r.Task == t) is { } r ? value(r) : null))]).ToList();
        return new ReportTable(title, ["configuration", .. tasks], rows);
    }
}
