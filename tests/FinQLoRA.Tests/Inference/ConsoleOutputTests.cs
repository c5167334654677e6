using FinQLoRA.Tests.Support;
using FinQLoRA.Serving;

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

    /// <summary>Plain output is the prompt, then the text exactly as --json gives it, the space before a continuation's
    /// first word included (stories260K's "Once upon" → "Once upon a time" is the same case on real weights).</summary>
    [Fact]
    public void PlainTextKeepsTheSpaceBetweenPromptAndContinuation()
    {
        string prompt = SpaceFirstPrompt();
        string[] args = ["generate", "--model", SeededLlama.Folder, "--prompt", prompt, "--max-new-tokens", "2"];
        var json = CliProcess.RunSeparately(Limit, [.. args, "--json"]);
        Assert.True(json.ExitCode == 0, json.Stderr);
        string text = System.Text.Json.Nodes.JsonNode.Parse(json.Stdout)!["text"]!.GetValue<string>();
        Assert.StartsWith(" ", text);
        var plain = CliProcess.RunSeparately(Limit, args);
        Assert.True(plain.ExitCode == 0, plain.Stderr);
        Assert.StartsWith(prompt + text, plain.Stdout);
    }

    /// <summary>A prompt the seeded model continues with a space piece (its greedy answer, as the generator gives it).</summary>
    private static string SpaceFirstPrompt()
    {
        using var model = SeededLlama.Load();
        var tokenizer = FinQLoRA.Loading.ModelLoading.LoadTokenizer(SeededLlama.Folder);
        var results = new FinQLoRA.Serving.TextGenerator(model, tokenizer)
            .Generate(GenerationTextTests.SpaceFirstCandidates, new FinQLoRA.Inference.GenerationOptions { MaxNewTokens = 2 }, batchSize: 4);
        return GenerationTextTests.SpaceFirstCandidates.Zip(results).First(p => p.Second.Text.StartsWith(' ')).First;
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
