using FinQLoRA.Distributed;

namespace FinQLoRA.Cli;

/// <summary>
/// How one console stream is written. <see cref="Terminal"/>: a person watches it, so live progress may redraw and
/// lines wrap at its width; otherwise every line is written whole (a log line split in two breaks every grep).
/// <see cref="Colour"/>: ANSI colour codes.
/// </summary>
public sealed record OutputStyle(bool Terminal, bool Colour)
{
    public static OutputStyle Plain { get; } = new(false, false);

    /// <summary>
    /// A terminal, unless the stream is redirected or the process is a rank of an MPI or Slurm launcher
    /// (<see cref="LaunchEnvironment"/>): Open MPI gives each rank a pseudo-terminal, but what a rank writes ends in
    /// the job's log. Colours on a terminal, or where FORCE_COLOR or CLICOLOR_FORCE asks for them (set, not 0);
    /// NO_COLOR wins over both and also stops live redraws. <paramref name="environment"/> reads a variable.
    /// </summary>
    public static OutputStyle For(bool redirected, Func<string, string?> environment)
    {
        bool Set(string name) => environment(name) is { Length: > 0 } value && value != "0";
        bool noColor = environment("NO_COLOR") is { Length: > 0 };
        bool terminal = !redirected && !Launched(environment) && !noColor;
        return new(terminal, !noColor && (terminal || Set("FORCE_COLOR") || Set("CLICOLOR_FORCE")));
    }

    private static bool Launched(Func<string, string?> environment)
    {
        try { return LaunchEnvironment.Detect(environment).IsLaunched; }
        catch (UserInputException) { return true; } // set, though inconsistently: the launch itself reports that
    }
}
