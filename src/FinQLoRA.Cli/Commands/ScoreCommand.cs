using System.ComponentModel;
using System.Globalization;
using System.Text.Json;
using FinQLoRA.Evaluation;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

internal sealed class ScoreCommand : Command<ScoreCommand.Settings>
{
    internal sealed class Settings : CommandSettings
    {
        [CommandOption("--task <TASK>")]
        [Description("Task whose metric to apply (see 'finqlora data build --help' for names).")]
        public string Task { get; init; } = "";

        [CommandOption("--predictions <FILE>")]
        [Description("JSONL with \"target\" and \"output\" (and optionally \"context\") per line.")]
        public string Predictions { get; init; } = "";

        [CommandOption("--json")]
        [Description("Print one JSON object {task, n, accuracy, weighted_f1, …} with fractions instead of a table.")]
        public bool Json { get; init; }

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Task) ? ValidationResult.Error("--task is required")
            : string.IsNullOrWhiteSpace(Predictions) ? ValidationResult.Error("--predictions is required")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var task = FinQLoRA.Data.Tasks.TaskRegistry.Get(settings.Task);
        var predictions = PredictionFile.Read(settings.Predictions);
        // An empty file would score 0 % (or a meaningless 100 %): there is nothing to score, so say so.
        if (predictions.Count == 0)
            throw new UserInputException($"{settings.Predictions}: no predictions (the file is empty or has only blank lines); expected one {{\"target\": …, \"output\": …}} object per line, as eval writes to predictions.jsonl");
        ScoreResult result;
        // The scorer sees (target, output) pairs only; its refusals (a target that is not a label) get the file named here.
        try { result = TaskScorer.Score(task, predictions.Select(p => (p.Target, p.Output)).ToList()); }
        catch (UserInputException e) when (!e.Message.StartsWith(settings.Predictions, StringComparison.Ordinal))
        {
            throw new UserInputException($"{settings.Predictions}: {e.Message}", e);
        }
        if (settings.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(result));
            return 0;
        }
        string F(double? v) => v is double d ? d.ToString("0.0000", CultureInfo.InvariantCulture) : "–";
        var table = new Table().AddColumns("task", "n", "accuracy", "weighted F1", "token F1", "unmatched");
        table.AddRow(Markup.Escape(result.Task), $"{result.N}", F(result.Accuracy), F(result.WeightedF1), F(result.TokenF1), $"{result.Unmatched}");
        AnsiConsole.Write(table);
        return 0;
    }
}
