using Spectre.Console;
using Spectre.Console.Cli;
using Spectre.Console.Cli.Help;
using Spectre.Console.Rendering;

namespace FinQLoRA.Cli.Help;

/// <summary>
/// Spectre's help, with every line ending at its last character: Spectre pads each cell of its option and command
/// grids to the column's width, so every row was as wide as the widest one (or the terminal). The footer names the
/// flag every command takes.
/// </summary>
internal sealed class FittedHelpProvider(ICommandAppSettings settings) : HelpProvider(settings)
{
    public override IEnumerable<IRenderable> Write(ICommandModel model, ICommandInfo? command) =>
        [new TrimmedLines([.. base.Write(model, command)])];

    public override IEnumerable<IRenderable> GetFooter(ICommandModel model, ICommandInfo? command) =>
        [new Text($"{Environment.NewLine}{CliApp.VerboseFlag} (any command): print the stack trace of an error{Environment.NewLine}")];
}
