using FinQLoRA.Cli;
using FinQLoRA.Cli.Parsing;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Cli;

/// <summary>An unknown option or a stray word is refused before any work: exit 2, one stderr line naming it and the
/// nearest option of the command, nothing on stdout (Spectre alone would ignore an unknown option).</summary>
public sealed class StrictCommandLineTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(1);

    public static TheoryData<string> EveryCommand() => [.. CommandCatalog.Read().Paths().Select(p => string.Join(' ', p))];

    [Fact]
    public void TheCatalogHoldsEveryRegisteredCommand()
    {
        var commands = CommandCatalog.Read().Paths().Select(p => string.Join(' ', p)).ToList();
        Assert.True(commands.Count > 20, string.Join(", ", commands));
        Assert.Contains("train", commands);
        Assert.Contains("data stats", commands);
        Assert.Contains("model fetch", commands);
    }

    [Theory]
    [MemberData(nameof(EveryCommand))]
    public void EveryCommandRefusesAnUnknownOption(string command)
    {
        var r = InProcessCli.Run([.. command.Split(' '), "--no-such-option", "1"]);
        string line = CliProcess.AssertOneLineError(r, "--no-such-option");
        Assert.StartsWith($"error: finqlora {command}: unknown option --no-such-option; did you mean --", line);
    }

    [Fact]
    public void AMisspelledOptionNamesTheOneMeant()
    {
        var r = CliProcess.RunSeparately(Limit, "generate", "--model", "m", "--prompt", "p", "--tempreture", "0.5");
        string line = CliProcess.AssertOneLineError(r, "--tempreture");
        Assert.Contains("did you mean --temperature?", line);
        // --name=value is the same option
        Assert.Contains("did you mean --temperature?", CliProcess.AssertOneLineError(InProcessCli.Run("generate", "--tempreture=0.5")));
    }

    [Fact]
    public void TrainRefusesAnOptionItDoesNotHave()
    {
        var r = CliProcess.RunSeparately(Limit, "train", "--model", "m", "--data", "d.jsonl", "--no-such-option");
        Assert.Contains("finqlora train: unknown option --no-such-option; did you mean --", CliProcess.AssertOneLineError(r));
    }

    [Fact]
    public void AStrayWordIsRefusedWithTheClosestOption()
    {
        string line = CliProcess.AssertOneLineError(InProcessCli.Run("train", "model.gguf"));
        Assert.Contains("unexpected argument 'model.gguf' (it takes options only); the closest option is --model", line);
        // a command with an argument refuses a second word
        Assert.Contains("finqlora data stats: unexpected argument 'b.jsonl' (it takes <FILE> and options)",
            CliProcess.AssertOneLineError(InProcessCli.Run("data", "stats", "a.jsonl", "b.jsonl")));
    }

    [Fact]
    public void AnOptionWithoutItsValueIsRefusedWithoutAMadeUpValue()
    {
        // Spectre's strict mode retries a refused line with its default command's name inserted, which would become
        // this option's value; the refusal must name the option instead
        string line = CliProcess.AssertOneLineError(InProcessCli.Run("train", "--model", "m", "--out"));
        Assert.Contains("'out'", line);
        Assert.DoesNotContain("__default_command", line);
    }

    [Fact]
    public void AMisspelledCommandNamesTheOneMeant()
    {
        Assert.Contains("unknown command 'tarin'; did you mean 'train'?", CliProcess.AssertOneLineError(InProcessCli.Run("tarin")));
        Assert.Contains("finqlora data: unknown command 'statz'; did you mean 'stats'?", CliProcess.AssertOneLineError(InProcessCli.Run("data", "statz")));
    }

    [Fact]
    public void LaunchPassesOnEverythingAfterTheDoubleDash()
    {
        // parsed: launch itself then refuses -n 0 (or finds no mpirun), without starting anything
        string line = CliProcess.AssertOneLineError(InProcessCli.Run("launch", "-n", "0", "--", "train", "--no-such-option"));
        Assert.DoesNotContain("no-such-option", line);
        Assert.StartsWith("error: ", line);
    }

    [Fact]
    public void VerboseIsTakenByEveryCommandAndNotPassedOn()
    {
        var r = InProcessCli.Run("data", "stats", "--verbose", "no-such-file.jsonl");
        Assert.Equal(2, r.ExitCode);
        Assert.DoesNotContain("unknown option", r.Stderr);
        Assert.True(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length > 1, r.Stderr); // the stack trace
        Assert.Equal(["launch", "-n", "2", "--", "train", "--verbose"], CliApp.WithoutVerbose(["launch", "--verbose", "-n", "2", "--", "train", "--verbose"]));
        Assert.False(CliApp.Verbose(["launch", "--", "train", "--verbose"]));
    }

    [Theory]
    [InlineData("--tempreture", "--temperature")]
    [InlineData("--temp", "--temperature")]
    [InlineData("--max-new-token", "--max-new-tokens")]
    [InlineData("--topk", "--top-k")]
    [InlineData("model.gguf", "--model")]
    public void TheClosestNameIsAPrefixOrTheFewestEdits(string typed, string expected) =>
        Assert.Equal(expected, ClosestName.Find(typed, ["--model", "--top-k", "--top-p", "--temperature", "--max-new-tokens", "--help"]));
}
