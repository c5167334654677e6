using System.ComponentModel;
using FinQLoRA.Data.Tasks;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

internal sealed class DataBuildCommand : Command<DataBuildCommand.Settings>
{
    internal sealed class Settings : CommandSettings
    {
        [CommandOption("--task <TASK>")]
        [Description("Task name: fpb, fiqa, tfns, tfns_card, nwgi, nwgi_3, headline, ner, xbrl_tags, xbrl_values, xbrl_term, financebench, formula, finer, fnxl.")]
        public string Task { get; init; } = "";

        [CommandOption("--source <FILE>")]
        [Description("Source file; repeat for several. Raw task format or FinLoRA context/target JSONL (*.jsonl).")]
        public string[] Sources { get; init; } = [];

        [CommandOption("--out <FILE>")]
        [Description("Output JSONL (context/target per line), written atomically.")]
        public string Out { get; init; } = "";

[CommandOption("--overwrite"), Description("replace an existing output that FinQLoRA wrote earlier (inputs and other folders are never replaced)")]
        public bool Overwrite { get; init; }

        [CommandOption("--split <SPLIT>")]
        [Description("train (default) or test. Partitions headline/xbrl_tags/xbrl_values by seed; selects how NER prompts are built.")]
        [DefaultValue("train")]
        public string Split { get; init; } = "train";

        [CommandOption("--exclude <FILE>")]
        [Description("JSONL file whose input texts must not appear in the output (normalised match); repeat for several.")]
        public string[] Exclude { get; init; } = [];

        [CommandOption("--seed <SEED>")]
        [Description("Seed for partitions, NER template and option order. Default 42.")]
        [DefaultValue(42)]
        public int Seed { get; init; } = 42;

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Task)) return ValidationResult.Error("--task is required");
            if (Sources.Length == 0) return ValidationResult.Error("--source is required (repeat it for several files)");
            if (string.IsNullOrWhiteSpace(Out)) return ValidationResult.Error("--out is required");
            if (Split is not ("train" or "test")) return ValidationResult.Error($"--split must be train or test, not '{Split}'");
            return ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var split = settings.Split == "test" ? DataSplit.Test : DataSplit.Train;
        FinQLoRA.IO.OutputPlacement.CheckFile(settings.Out, [.. settings.Sources, .. settings.Exclude], settings.Overwrite);
        var result = TaskDataBuilder.Build(settings.Task, settings.Sources, split, settings.Exclude, settings.Seed);
        ExampleJsonl.Write(settings.Out, result.Examples);
        AnsiConsole.MarkupLine($"wrote [bold]{result.Examples.Count}[/] {Markup.Escape(settings.Task)} examples ({settings.Split}) to {Markup.Escape(settings.Out)}");
        if (settings.Exclude.Length > 0)
            AnsiConsole.MarkupLine($"dropped [bold]{result.ExcludedCount}[/] whose input text occurs in {Markup.Escape(string.Join(", ", settings.Exclude))}");
        return 0;
    }
}
