using System.ComponentModel;
using FinQLoRA.Demo;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

public sealed class DemoSettings : CommandSettings
{
    [CommandOption("--out <DIR>")][Description("output folder")][DefaultValue("runs/demo")] public string Out { get; set; } = "runs/demo";
    [CommandOption("--epochs <N>")][DefaultValue(8)] public int Epochs { get; set; } = 8;
}

public sealed class DemoCommand : Command<DemoSettings>
{
    public override int Execute(CommandContext context, DemoSettings s, CancellationToken cancellationToken)
    {
        var summary = DemoRunner.Run(s.Out, line => AnsiConsole.WriteLine(line), epochs: s.Epochs);
        var table = new Table().Title("QLoRA demo: financial sentiment (4-bit NF4 base, rank-4 LoRA)")
            .AddColumns("", "accuracy", "weighted F1");
        table.AddRow("base", $"{summary.BaseAccuracy:P1}", $"{summary.BaseWeightedF1 ?? 0:P1}");
        table.AddRow("fine-tuned", $"{summary.FinetunedAccuracy:P1}", $"{summary.FinetunedWeightedF1 ?? 0:P1}");
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"train {summary.TrainSeconds:F1} s, {summary.TokensPerSecond:F0} tok/s, adapter {summary.AdapterBytes / 1024.0:F1} KiB; summary in {Markup.Escape(Path.Combine(s.Out, "summary.json"))}");
        return 0;
    }
}
