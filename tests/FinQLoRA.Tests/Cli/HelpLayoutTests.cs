using FinQLoRA.Cli;
using FinQLoRA.Training;

namespace FinQLoRA.Tests.Cli;

/// <summary>Help fits its content (Spectre pads every grid row to the widest one), and the train options' help is
/// the train keys' own text.</summary>
public sealed class HelpLayoutTests
{
    private static string[] HelpLines(params string[] command)
    {
        var r = InProcessCli.Run([.. command, "--help"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return r.Stdout.Split('\n');
    }

    [Theory]
    [InlineData("train")]
    [InlineData("generate")]
    [InlineData("data")]
    [InlineData]
    public void EveryHelpLineEndsAtItsContent(params string[] command)
    {
        string[] lines = HelpLines(command);
        Assert.Contains(lines, l => l.Contains("--help"));
        Assert.All(lines, line => Assert.True(line == line.TrimEnd(), $"padded: [{line}]"));
    }

    [Fact]
    public void TrainHelpShowsEachKeysDescription()
    {
        string[] lines = HelpLines("train");
        foreach (var key in TrainKeys.All.Where(k => k.HasFlag))
        {
            string flag = FlagNames.For(key.Name);
            string? line = lines.FirstOrDefault(l => l.TrimStart().StartsWith(flag + " ", StringComparison.Ordinal) || l.TrimEnd().EndsWith(flag, StringComparison.Ordinal) && l.TrimStart().StartsWith("--", StringComparison.Ordinal));
            Assert.True(line != null, $"{flag} is not in train --help");
            Assert.EndsWith(key.Description, line);
        }
        Assert.Contains(lines, l => l.StartsWith(CliApp.VerboseFlag, StringComparison.Ordinal)); // the flag every command takes
    }
}
