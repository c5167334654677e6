using System.ComponentModel;
using FinQLoRA.Evaluation;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

internal sealed class ReportCommand : Command<ReportCommand.Settings>
{
    internal sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<RUN_DIR>")]
        [Description("Run directories (or results.json files) to join.")]
        public string[] RunDirs { get; init; } = [];

        [CommandOption("--out <DIR>")]
        [Description("Directory for report.md and accuracy.png.")]
        public string Out { get; init; } = "";

        [CommandOption("--overwrite"), Description("replace an existing output that FinQLoRA wrote earlier (inputs and other folders are never replaced)")]
        public bool Overwrite { get; init; }

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Out) ? ValidationResult.Error("--out is required") : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var report = ReportWriter.Write(settings.RunDirs, settings.Out, settings.Overwrite);
        foreach (var t in new[] { report.Accuracy(), report.WeightedF1(), report.Cost() })
        {
            var table = new Table().Title(Markup.Escape(t.Title));
            foreach (string c in t.Columns) table.AddColumn(Markup.Escape(c));
            foreach (var row in t.Rows) table.AddRow(row.Select(Markup.Escape).ToArray());
            AnsiConsole.Write(table);
        }
        AnsiConsole.MarkupLine($"wrote {Markup.Escape(Path.Combine(settings.Out, ReportWriter.MarkdownName))} and {Markup.Escape(Path.Combine(settings.Out, ReportWriter.ChartName))}");
        return 0;
    }
}
