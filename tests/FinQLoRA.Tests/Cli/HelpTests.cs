using System.Text.RegularExpressions;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Cli;

/// <summary>Every command's <c>--help</c> renders: a description is Spectre markup, so text such as
/// <c>FILE[:WEIGHT]</c> must be escaped or the help itself fails.</summary>
public sealed partial class HelpTests
{
    [Fact]
    public void EveryCommandsHelpRenders()
    {
        var pending = new Queue<string[]>([[]]);
        int checkedCommands = 0;
        while (pending.TryDequeue(out var command))
        {
            var (code, stdout, stderr) = CliProcess.RunSeparately(TimeSpan.FromMinutes(1), [.. command, "--help"]);
            string name = command.Length == 0 ? "finqlora" : string.Join(' ', command);
            Assert.True(code == 0, $"{name} --help: exit {code}: {stderr}");
            Assert.Contains("USAGE:", stdout);
            checkedCommands++;
            int at = stdout.IndexOf("COMMANDS:", StringComparison.Ordinal);
            if (at < 0) continue;
            foreach (Match m in SubcommandLine().Matches(stdout[at..]))
                pending.Enqueue([.. command, m.Groups[1].Value]);
        }
        Assert.True(checkedCommands > 20, $"only {checkedCommands} commands found");
    }

    [GeneratedRegex(@"^    ([a-z][a-z-]*)\b", RegexOptions.Multiline)]
    private static partial Regex SubcommandLine();
}
