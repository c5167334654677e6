using System.ComponentModel;
using System.Globalization;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Data.Tokenization;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

internal sealed class DataStatsCommand : Command<DataStatsCommand.Settings>
{
    internal sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<FILE>")]
        [Description("Context/target JSONL file.")]
        public string File { get; init; } = "";

        [CommandOption("--tokenizer <PATH>")]
        [Description("Model folder or tokenizer.json: count lengths in its tokens instead of whitespace-separated words.")]
        public string? Tokenizer { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        Func<string, int>? counter = null;
        if (settings.Tokenizer != null)
        {
            var tokenizer = TokenizerLoader.FromHuggingFace(settings.Tokenizer);
            counter = text => tokenizer.Encode(text, addBos: false).Length;
        }
        var examples = ExampleJsonl.Read(settings.File);
        if (examples.Count == 0)
            throw new UserInputException($"{settings.File}: no examples (the file is empty or has only blank lines); expected one {{\"context\": …, \"target\": …}} object per line");
        var stats = DatasetStats.Compute(examples, counter);

        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(settings.File)}[/]: {stats.Count} examples, {stats.DistinctInputs} distinct inputs, {stats.DistinctTargets} distinct targets");
        var targets = new Table().Title("targets").AddColumns("target", "count", "share");
        foreach (var (target, count) in stats.TargetCounts)
            targets.AddRow(Markup.Escape(Shorten(target)), count.ToString(CultureInfo.InvariantCulture), (100.0 * count / Math.Max(1, stats.Count)).ToString("0.0", CultureInfo.InvariantCulture) + "%");
        if (stats.DistinctTargets > stats.TargetCounts.Count) targets.AddRow($"({stats.DistinctTargets - stats.TargetCounts.Count} more)", "", "");
        AnsiConsole.Write(targets);

        var lengths = new Table().Title($"length in {stats.LengthUnit}").AddColumns("", "min", "p50", "p90", "p95", "p99", "max", "mean");
        foreach (var (name, p) in new[] { ("context", stats.ContextLength), ("target", stats.TargetLength) })
            lengths.AddRow(name, $"{p.Min}", $"{p.P50}", $"{p.P90}", $"{p.P95}", $"{p.P99}", $"{p.Max}", p.Mean.ToString("0.0", CultureInfo.InvariantCulture));
        AnsiConsole.Write(lengths);
        return 0;
    }

    private static string Shorten(string s)
    {
        string one = s.ReplaceLineEndings(" ");
        return one.Length <= 60 ? one : one[..57] + "...";
    }
}
