using System.ComponentModel;
using FinQLoRA.Adapters.Averaging;
using FinQLoRA.Recipes;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora adapters average --adapter NAME=DIR[:WEIGHT] --adapter ... --out DIR</c>: progress and the
/// warning on stderr, the result line on stdout.</summary>
internal sealed class AdaptersAverageCommand : Command<AdaptersAverageCommand.Settings>
{
    internal sealed class Settings : CommandSettings
    {
        [CommandOption("--adapter <NAME=DIR:WEIGHT>")]
        [Description("a PEFT adapter folder to average, with its relative weight (default 1; repeat for each site, at least two); weights are normalised to sum 1")]
        public string[] Adapter { get; init; } = [];

        [CommandOption("--out <DIR>"), Description("new (or empty) folder for the averaged PEFT adapter and its lineage.json; an existing non-empty folder is refused")]
        public string Out { get; init; } = "";

        public override Spectre.Console.ValidationResult Validate() =>
            RequiredOptions.Missing(("--out", Out)) ?? Spectre.Console.ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var result = AdapterAverageRecipe.Run(new AdapterAverageOptions
        {
            Inputs = AveragedAdapterInput.ParseAll(s.Adapter), OutPath = s.Out, Progress = Console.Error.WriteLine,
        });
        Console.WriteLine($"averaged {result.Inputs} adapters → {result.OutPath} ({result.Tensors} tensors, {result.WeightsBytes / (1024.0 * 1024.0):F2} MiB, "
            + $"{(result.Exact ? "exact: shared frozen A" : "not exact: A and B averaged separately")})");
        return 0;
    }
}
