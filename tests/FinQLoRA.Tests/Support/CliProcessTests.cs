namespace FinQLoRA.Tests.Support;

/// <summary>What the one child-process runner guarantees: a hang is killed and reported with its output, the
/// environment can set and remove variables, and a shell command line keeps every word whole.</summary>
public sealed class CliProcessTests
{
    [Fact]
    public void AHangIsKilledAtTheLimitAndReportedWithWhatItWrote()
    {
        var e = Assert.Throws<TimeoutException>(() =>
            CliProcess.RunProgram("sh", ["-c", "echo started; sleep 60"], TimeSpan.FromSeconds(2)));
        Assert.Contains("still running after 2 s (hang)", e.Message);
        Assert.Contains("started", e.Message);
    }

    [Fact]
    public void EnvironmentEntriesSetOrRemoveVariablesAndStreamsStayApart()
    {
        const string name = "FINQLORA_CLIPROCESS_TEST";
        Environment.SetEnvironmentVariable(name, "inherited");
        try
        {
            string script = $"echo ${{{name}-unset}}; echo err >&2; exit 3";
            var inherited = CliProcess.RunProgram("sh", ["-c", script], TimeSpan.FromSeconds(30));
            Assert.Equal((3, "inherited\n", "err\n"), (inherited.ExitCode, inherited.Stdout, inherited.Stderr));
            var removed = CliProcess.RunProgram("sh", ["-c", script], TimeSpan.FromSeconds(30),
                new CliRunOptions { Environment = new Dictionary<string, string?> { [name] = null } });
            Assert.Equal("unset\n", removed.Stdout);
            var set = CliProcess.RunProgram("sh", ["-c", script], TimeSpan.FromSeconds(30),
                new CliRunOptions { Environment = new Dictionary<string, string?> { [name] = "given" } });
            Assert.Equal("given\n", set.Stdout);
        }
        finally { Environment.SetEnvironmentVariable(name, null); }
    }

    [Fact]
    public void ShellCommandQuotesEveryWordAndSetsTheEnvironmentForTheCliAlone()
    {
        string command = CliProcess.ShellCommand(new Dictionary<string, string> { ["NO_COLOR"] = "1" }, "data", "it's a file.jsonl");
        Assert.Equal($"'env' 'NO_COLOR=1' 'dotnet' '{CliProcess.CliDll}' 'data' 'it'\\''s a file.jsonl'", command);
        // the shell hands the words over unchanged
        var r = CliProcess.RunProgram("sh", ["-c", command.Replace("'dotnet' ", "'printf' '%s|' ")], TimeSpan.FromSeconds(30));
        Assert.Equal($"{CliProcess.CliDll}|data|it's a file.jsonl|", r.Stdout);
    }
}
