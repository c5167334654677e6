using System.ComponentModel;
using FinQLoRA.Training;
using FinQLoRA.Recipes;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora verify DIR</c>: exit 0 when every recorded hash matches, 1 naming the first mismatch.</summary>
internal sealed class VerifyCommand : Command<VerifyCommand.Settings>
{
    internal sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<DIR>"), Description("a training run folder (run.json) or an adapter folder (lineage.json)")]
        public string Dir { get; init; } = "";
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var result = VerifyRecipe.Run(s.Dir, c =>
        {
            string status = c.Outcome switch { LineageVerifier.Outcome.Match => "ok", LineageVerifier.Outcome.Missing => "skipped", _ => "MISMATCH" };
            Console.WriteLine($"{status,-8} {c.What}: {c.Path}{(c.Detail != null ? $" ({c.Detail})" : "")}");
        });
        if (result.FirstMismatch is { } first)
        {
            Console.Error.WriteLine($"verify: {first.What} {first.Path}: {first.Detail}");
            return 1;
        }
        Console.WriteLine($"verified: {result.Matched} files match their record, {result.Missing} inputs not present");
        return 0;
    }
}
