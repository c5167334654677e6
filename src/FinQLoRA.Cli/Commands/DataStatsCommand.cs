using System.ComponentModel;
using System.Globalization;
using FinQLoRA.Data.Chat;
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
        [Description("Training data: context/target, Alpaca or chat JSONL, or Parquet.")]
        public string File { get; init; } = "";

        [CommandOption("--tokenizer <PATH>")]
        [Description("Model folder or tokenizer.json: count lengths in its tokens instead of whitespace-separated words.")]
        public string? Tokenizer { get; init; }

        [CommandOption("--data-format <FORMAT>"), Description("auto (from the fields), context-target, alpaca or chat"), DefaultValue("auto")]
        public string DataFormat { get; init; } = "auto";

        [CommandOption("--chat-template <NAME>"), Description("chat data: auto (the --tokenizer folder's), " + FinQLoRA.Data.Chat.ChatTemplate.Names), DefaultValue("auto")]
        public string ChatTemplate { get; init; } = "auto";

        [CommandOption("--max-seq-len <L>"), Description("with --tokenizer: count the examples train would cut at this length"), DefaultValue(512)]
        public int MaxSeqLen { get; init; } = 512;
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        Func<string, int>? counter = null;
        ITextTokenizer? tokenizer = null;
        if (settings.Tokenizer != null)
        {
            tokenizer = TokenizerLoader.FromHuggingFace(settings.Tokenizer);
            counter = text => tokenizer.Encode(text, addBos: false).Length;
        }
        var format = FinQLoRA.Data.Formats.DataFormats.Parse(settings.DataFormat, "--data-format");
        var data = FinQLoRA.Data.Formats.TrainingData.Read(settings.File, format,
            () => ChatTemplateDetector.Resolve(settings.ChatTemplate, "--chat-template", settings.Tokenizer));
        var examples = data.Records.Select(r => r.Answer).ToList();
        if (examples.Count == 0)
            throw new UserInputException($"{settings.File}: no examples (the file is empty or has only blank lines); expected one {{\"context\": …, \"target\": …}} object per line");
        var stats = DatasetStats.Compute(examples, counter);

        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(settings.File)}[/]: {stats.Count} {FinQLoRA.Data.Formats.DataFormats.Name(data.Format)} examples, {stats.DistinctInputs} distinct inputs, {stats.DistinctTargets} distinct targets");
        if (tokenizer != null)
        {
            // what training will see: the share of tokens the loss covers, and the examples cut to fit
            var sft = new FinQLoRA.Data.Sft.SftTokenizer(tokenizer, settings.MaxSeqLen);
            var tokenized = data.Records.Select(r => sft.Tokenize(r)).ToList();
            long all = tokenized.Sum(t => (long)t.Length), trained = tokenized.Sum(t => (long)t.Labels.Count(l => l != FinQLoRA.Data.Sft.TokenizedExample.IgnoreIndex));
            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"tokens: {all} in all, {trained} carry loss ({100.0 * trained / Math.Max(1, all):0.0}%); at max_seq_len {settings.MaxSeqLen}: {sft.TruncatedPrompts} prompts would be cut, {sft.TruncatedTargets} targets"));
        }
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
