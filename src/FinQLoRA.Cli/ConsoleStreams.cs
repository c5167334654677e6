using Spectre.Console;

namespace FinQLoRA.Cli;

/// <summary>
/// What goes where on the console. stdout carries results (with <c>--json</c>, nothing but JSON lines); progress,
/// warnings and errors go to stderr. Colours, live progress and wrapping only as <see cref="OutputStyle"/> allows:
/// on a real terminal, never under an MPI launcher or with NO_COLOR; colours also where FORCE_COLOR asks.
/// </summary>
internal static class ConsoleStreams
{
    // a file, a pipe or a launcher's log has no width: never wrap a line
    private const int UnwrappedWidth = 4096;

    public static void Configure(string[] args)
    {
        bool json = args.Contains("--json");
        var style = json ? OutputStyle.Plain : OutputStyle.For(Console.IsOutputRedirected, Environment.GetEnvironmentVariable);
        if (style.Terminal) return; // Spectre's own detection
        // .NET's Unix console writes the terminal's keypad-mode sequence (ESC[?1h ESC=) to stdout the first time it
        // initialises a terminal; under a pseudo-terminal or mpirun that lands before the first JSON line or log line.
        // With TERM=dumb there is no such sequence to write (set before any Console use, for this process only).
        if (!Console.IsOutputRedirected && !style.Colour) Environment.SetEnvironmentVariable("TERM", "dumb");
        AnsiConsole.Console = Create(style, Console.Out);
    }

    private static OutputStyle ErrorStyle { get; } = OutputStyle.For(Console.IsErrorRedirected, Environment.GetEnvironmentVariable);

    /// <summary>The console for progress displays: stderr, live (bars, spinners) only on a terminal.</summary>
    public static IAnsiConsole Progress { get; } = ErrorStyle.Terminal
        ? AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) })
        : Create(ErrorStyle, Console.Error);

    private static IAnsiConsole Create(OutputStyle style, TextWriter writer)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = style.Colour ? AnsiSupport.Yes : AnsiSupport.No,
            ColorSystem = style.Colour ? ColorSystemSupport.EightBit : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No, Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = UnwrappedWidth;
        return console;
    }
}
