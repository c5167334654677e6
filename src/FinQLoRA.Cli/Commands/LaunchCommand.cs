using System.ComponentModel;
using FinQLoRA.Distributed;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora launch -n N -- &lt;finqlora args…&gt;</c>: runs a finqlora command on N ranks under mpirun.</summary>
internal sealed class LaunchCommand : Command<LaunchCommand.Settings>
{
    internal sealed class Settings : CommandSettings
    {
        [CommandOption("-n|--ranks <N>")]
        [Description("Number of ranks (processes) to start.")]
        public int Ranks { get; init; } = 1;
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        IReadOnlyList<string> inner = context.Remaining.Raw;
        if (inner.Count == 0)
            throw new UserInputException("launch: nothing to run; put the finqlora command after --, e.g. finqlora launch -n 2 -- version");
        return MpiLauncher.Run(settings.Ranks, inner);
    }
}
