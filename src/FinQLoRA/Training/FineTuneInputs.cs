using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Formats;
using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tasks;

namespace FinQLoRA.Training;

/// <summary>
/// The records of a fine-tune, read and checked before any model loads (a bad line fails in seconds, not after the
/// load): every training source, each split for evaluation when <c>eval_split</c> asks, and the eval data.
/// </summary>
public sealed class FineTuneInputs
{
    private readonly List<(DataSource Source, List<SftRecord> Train)> _sources;

    private FineTuneInputs(List<(DataSource, List<SftRecord>)> sources, IReadOnlyList<(string Name, List<SftRecord> Records)> evalTasks,
        IReadOnlyList<string> summary) => (_sources, EvalTasks, Summary) = (sources, evalTasks, summary);

    /// <summary>What was read, one progress line per source (the caller prints them once every input has been checked).</summary>
    public IReadOnlyList<string> Summary { get; }

    /// <summary>Held-out records by task: the eval data, or each source's split.</summary>
    public IReadOnlyList<(string Name, List<SftRecord> Records)> EvalTasks { get; }

    public int SourceCount => _sources.Count;

    public static FineTuneInputs Read(TrainConfig c)
    {
        var summary = new List<string>();
        var sources = new List<(DataSource, List<SftRecord>)>();
        var held = new List<(string Name, List<SftRecord> Records)>();
        foreach (var source in c.DataSources)
        {
            var data = ReadFile(c, source.File);
            summary.Add($"data: {data.Records.Count} {DataFormats.Name(data.Format)} records from {source.File}" + (c.DataSources.Count > 1 ? $" (task {source.Name}, weight {source.Weight:G4})" : ""));
            if (data.Records.Count == 0) throw new UserInputException($"{source.File}: no examples; each line needs 'context' and 'target' (or instruction/output, or messages)");
            var (train, eval) = TrainingEvaluator.Split(data.Records, c);
            sources.Add((source, train));
            if (eval.Count > 0) held.Add((source.Name, eval));
        }
        IReadOnlyList<(string, List<SftRecord>)> evalTasks = c.EvalData != null ? [("eval", ReadFile(c, c.EvalData).Records)] : held;
        return new FineTuneInputs(sources, evalTasks, summary);
    }

    /// <summary>The training examples of one epoch: each source tokenized, then mixed by weight (seeded).</summary>
    /// <param name="units">give each example its privacy unit (<see cref="Privacy.PrivacyUnits"/>): its own record, or its unit field's value</param>
    public List<TokenizedExample> Tokenize(SftTokenizer sft, long seed, Action<string> log, bool units = false)
    {
        var unitIds = new Dictionary<string, int>(StringComparer.Ordinal);
        int UnitOf(string key) => unitIds.TryGetValue(key, out int id) ? id : unitIds[key] = unitIds.Count;
        var examples = DataSource.Mix(_sources.Select((s, k) => (s.Source, s.Train.Select((r, i) =>
        {
            var e = sft.Tokenize(r);
            // a record is its own unit unless a unit field names it; "k:i" cannot collide with another source's records
            return units ? e with { Unit = UnitOf(r.Unit is { } field ? "field " + field : $"record {k}:{i}") } : e;
        }).ToList())).ToList(), seed);
        if (units) examples = Privacy.PrivacyUnits.Dense(examples);
        if (_sources.Count > 1) log($"task family: {examples.Count} examples per epoch, " + string.Join(", ", _sources.Select(s => $"{s.Source.Name} {Math.Round(examples.Count * s.Source.Weight / _sources.Sum(x => x.Source.Weight))}")));
        return examples;
    }

    /// <summary>Training data in any supported format; chat data is rendered with the configured (or the model's) template.</summary>
    private static TrainingData.Loaded ReadFile(TrainConfig c, string path) => TrainingData.Read(path, DataFormats.Parse(c.DataFormat, "data_format"),
        () => ChatTemplateDetector.Resolve(c.ChatTemplate, "chat_template", c.Model), c.Dp ? c.DpUnit.Field : null);
}
