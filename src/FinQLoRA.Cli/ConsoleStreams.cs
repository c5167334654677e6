using Spectre.Console;

namespace FinQLoRA.Cli;

/// <summary>
/// What goes where on the console. stdout carries results (with <c>--json</c>, nothing but JSON lines); progress,
/// warnings and errors go to stderr. Colours and live progress only when stderr is a real terminal and
/// <c>NO_COLOR</c> is not set.
/// </summary>
internal static class ConsoleStreams
{
    public static void Configure(string[] args)
    {
        bool json = args.Contains("--json");
        if (json || Console.IsOutputRedirected || Environment.GetEnvironmentVariable("NO_COLOR") is { Length: > 0 })
        {
            // .NET's Unix console writes the terminal's keypad-mode sequence (ESC[?1h ESC=) to stdout the first time it
            // initialises a terminal; under a pseudo-terminal or mpirun that lands before the first JSON line. With
            // TERM=dumb there is no such sequence to write (set before any Console use, for this process only).
            if (json && !Console.IsOutputRedirected) Environment.SetEnvironmentVariable("TERM", "dumb");
            AnsiConsole.Console = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors,
                Interactive = InteractionSupport.No, Out = new AnsiConsoleOutput(Console.Out),
            });
            // a file or a pipe has no width: never wrap a line (a log line split in two breaks every grep)
            AnsiConsole.Console.Profile.Width = 4096;
        }
    }

    /// <summary>Whether live progress (bars, spinners) and colours may be drawn on stderr: only on a real terminal,
    /// and never with NO_COLOR.</summary>
    public static bool Interactive => !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("NO_COLOR") is not { Length: > 0 };

    /// <summary>The console for progress displays: stderr, live only when <see cref="Interactive"/>.</summary>
    public static IAnsiConsole Progress { get; } = AnsiConsole.Create(new AnsiConsoleSettings
    {
        Out = new AnsiConsoleOutput(Console.Error),
        Ansi = Interactive ? AnsiSupport.Detect : AnsiSupport.No,
        ColorSystem = Interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        Interactive = Interactive ? InteractionSupport.Yes : InteractionSupport.No,
    });
}
