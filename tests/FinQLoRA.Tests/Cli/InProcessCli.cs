using FinQLoRA.Cli;
using FinQLoRA.Tests.Support;
using Spectre.Console;

namespace FinQLoRA.Tests.Cli;

/// <summary>Runs the <c>finqlora</c> command line in this process (<see cref="CliApp.Run"/>, as Program does), with
/// what Spectre writes (help) and stderr captured: no process to start, so a test can walk every command.</summary>
internal static class InProcessCli
{
    public static CliResult Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(stdout),
        });
        console.Profile.Width = 4096; // as ConsoleStreams sets it for a file or a pipe
        int code = CliApp.Run(args, stderr, console: console);
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }
}
