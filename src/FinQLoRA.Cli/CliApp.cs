using FinQLoRA.Cli.Commands;
using FinQLoRA.Cli.Help;
using FinQLoRA.Cli.Parsing;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli;

/// <summary>
/// The <c>finqlora</c> command line: every registered command, parsed strictly (an unknown option or a stray word is
/// refused before any work, in one line naming the nearest option: <see cref="RefusedCommandLine"/>), help that fits
/// its content, and every failure rendered by <see cref="ErrorReport"/>. Program runs it; tests run it in-process.
/// </summary>
public static class CliApp
{
    /// <summary>Every command's flag (ErrorReport adds the stack trace): taken out before Spectre parses, so that
    /// it is not refused on commands whose settings do not declare it.</summary>
    public const string VerboseFlag = "--verbose";

    public static void Configure(IConfigurator config)
    {
        config.SetApplicationName("finqlora");
        config.PropagateExceptions();
        config.SetHelpProvider(new FittedHelpProvider(config.Settings));
        CommandRegistry.Register(config);
    }

    /// <summary>Runs one command line; returns its exit code. <paramref name="beforeRun"/> runs inside the error
    /// handling (Program loads libtorch there); <paramref name="console"/> replaces the console Spectre writes help to.</summary>
    public static int Run(IReadOnlyList<string> args, TextWriter stderr, Action? beforeRun = null, IAnsiConsole? console = null)
    {
        bool verbose = Verbose(args) || Environment.GetEnvironmentVariable("FINQLORA_VERBOSE") == "1";
        var app = new CommandApp();
        app.Configure(config =>
        {
            Configure(config);
            if (console != null) config.Settings.Console = console;
        });
        try
        {
            beforeRun?.Invoke();
            var own = WithoutVerbose(args);
            RefusedCommandLine.Check(own);
            return app.Run(own);
        }
        catch (Exception e)
        {
            return ErrorReport.Write(e, verbose, stderr);
        }
    }

    /// <summary>Whether <c>--verbose</c> comes before the <c>--</c> that hands the rest on (<c>launch -n 2 -- …</c>).</summary>
    public static bool Verbose(IReadOnlyList<string> args) => Own(args).Contains(VerboseFlag);

    public static IReadOnlyList<string> WithoutVerbose(IReadOnlyList<string> args) =>
        [.. Own(args).Where(a => a != VerboseFlag), .. args.Skip(Own(args).Count())];

    private static IEnumerable<string> Own(IReadOnlyList<string> args) => args.TakeWhile(a => a != "--");
}
