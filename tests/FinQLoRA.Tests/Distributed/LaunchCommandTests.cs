using FinQLoRA.Distributed;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Distributed;

[Collection(MpiCollection.Name)]
public sealed class LaunchCommandTests
{
    [Fact]
    public void MpirunCommandLineRunsTheProgramOnNRanks()
    {
        Assert.Equal(["--oversubscribe", "--allow-run-as-root", "-np", "3", "/usr/bin/dotnet", "finqlora.dll", "version"],
            MpiLauncher.BuildArguments(3, "/usr/bin/dotnet", ["finqlora.dll"], ["version"], runningAsRoot: true));
        Assert.Equal(["--oversubscribe", "-np", "2", "/opt/finqlora", "train", "--config", "a b.yaml"],
            MpiLauncher.BuildArguments(2, "/opt/finqlora", [], ["train", "--config", "a b.yaml"], runningAsRoot: false));
    }

    [Fact]
    public void ZeroRanksIsAUserError() =>
        Assert.Contains("-n 0", Assert.Throws<UserInputException>(() => MpiLauncher.BuildArguments(0, "p", [], [], false)).Message);

    [MpiFact]
    public void LaunchRunsTheInnerCommandOnEveryRankAndForwardsTheExitCode()
    {
        MpiJob ok = MpiJob.RunProcess(CliProcess.Dotnet, CliProcess.Arguments(["launch", "-n", "2", "--", "version"]), TimeSpan.FromSeconds(60));
        Assert.True(ok.ExitCode == 0, ok.Output);
        // Contains, not StartsWith: mpirun gives ranks a pty, and .NET writes a terminal escape before the first line.
        Assert.Equal(2, ok.Output.Split('\n').Count(line => line.Contains("finqlora 1.", StringComparison.Ordinal)));

        MpiJob failing = MpiJob.RunProcess(CliProcess.Dotnet, CliProcess.Arguments(["launch", "-n", "1", "--", "no-such-command"]), TimeSpan.FromSeconds(60));
        Assert.Equal(2, failing.ExitCode); // the CLI's exit code for a usage error, passed through mpirun and launch
    }
}
