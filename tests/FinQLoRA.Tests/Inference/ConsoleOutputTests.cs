using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Inference;

/// <summary>What reaches stdout: pure JSON with --json even on a terminal; plain text that reads as the model wrote it.</summary>
public sealed class ConsoleOutputTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(2);

    /// <summary>Runs the CLI under a pseudo-terminal, as a user's shell or mpirun would; "env NAME=VALUE …" in front
    /// sets the environment of the CLI only.</summary>
    private static string UnderTerminal(params string[] args)
    {
        var env = args.TakeWhile(a => a == "env" || a.Contains('=')).ToArray();
        var environment = env.Skip(1).Select(a => a.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
        var r = CliProcess.RunUnderTerminal(Limit, environment, args[env.Length..]);
        Assert.True(r.ExitCode == 0, r.Output);
        return r.Stdout;
    }

    [Fact]
    public void JsonOnATerminalIsNothingButJsonLines()
    {
        string output = UnderTerminal("generate", "--model", SeededLlama.Folder, "--prompt", "Once upon a time", "--max-new-tokens", "4", "--json");
        var lines = output.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("{\"prompt\"", lines[0]); // no ESC[?1h ESC= (keypad mode) before it
        System.Text.Json.JsonDocument.Parse(lines[0]).Dispose();
    }

    [Fact]
    public void ColoursOnlyOnATerminalAndNeverWithNoColor()
    {
        using var dir = new TempFolder();
        string[] args = ["data", "stats", FinQLoRA.Tests.Training.TrainingRun.WriteData(dir.Path)];
        Assert.Contains("\u001b[", UnderTerminal(args)); // bold file name on a terminal
        // (.NET's own keypad-mode sequence on a terminal is not a colour)
        Assert.DoesNotContain("\u001b[", UnderTerminal(["env", "NO_COLOR=1", .. args]).Replace("\u001b[?1h\u001b=", ""));
        Assert.DoesNotContain("\u001b[", CliProcess.RunSeparately(Limit, args).Stdout); // a pipe
    }

    [SharedFact]
    public void PlainTextKeepsTheSpaceBetweenPromptAndContinuation()
    {
        var r = CliProcess.RunSeparately(Limit, "generate", "--model", Shared.File("models/stories260K-hf"), "--prompt", "Once upon", "--max-new-tokens", "2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.StartsWith("Once upon a time", r.Stdout);
    }

    [Fact]
    public void AnUnexpectedFailureIsOneLineAndVerboseAddsTheStack()
    {
        Exception thrown;
        try { throw new InvalidOperationException("boom\nsecond line"); } catch (Exception e) { thrown = e; }
        var plain = new StringWriter();
        Assert.Equal(1, FinQLoRA.Cli.ErrorReport.Write(thrown, verbose: false, plain));
        Assert.Equal(["error: InvalidOperationException: boom second line (run with --verbose for details)"], plain.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var verbose = new StringWriter();
        Assert.Equal(1, FinQLoRA.Cli.ErrorReport.Write(thrown, verbose: true, verbose));
        Assert.Contains(nameof(AnUnexpectedFailureIsOneLineAndVerboseAddsTheStack), verbose.ToString()); // the stack trace
        Assert.Equal(2, FinQLoRA.Cli.ErrorReport.Write(new UserInputException("x.json: bad"), verbose: false, new StringWriter()));
    }

    [Fact]
    public void VerboseOnABadInputExitsNormallyWithNothingOnStdout()
    {
        using var dir = new TempFolder();
        var r = CliProcess.RunSeparately(Limit, "generate", "--model", Path.Combine(dir.Path, "missing"), "--prompt", "x", "--json", "--verbose");
        Assert.Equal(2, r.ExitCode); // not an abort (134)
        Assert.Equal("", r.Stdout);
        Assert.StartsWith("error: ", r.Stderr);
    }
}
