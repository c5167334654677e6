using FinQLoRA.Tests.Support;
using Xunit.Abstractions;

namespace FinQLoRA.Tests.Fuzz;

/// <summary>
/// The CLI's contract for bad input, over the whole fuzz corpus (<see cref="FuzzCorpus"/>): the real finqlora
/// process exits 2 with exactly one line on stderr, prints nothing on stdout (which may carry --json) and leaves its
/// working and output folders, and the shared model it reads, as they were.
/// </summary>
public sealed class MalformedInputTests(FuzzRuns runs, ITestOutputHelper output) : IClassFixture<FuzzRuns>
{
    public static TheoryData<string> Cases() => new(FuzzCorpus.All.Select(c => c.Name));

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task MalformedInputExits2WithOneLineOnStderrAndWritesNothing(string name)
    {
        FuzzRun run = await runs.All[name];
        string command = $"finqlora {string.Join(' ', run.Args.Select(a => a.Length > 80 ? a[..80] + "…" : a))}";
        output.WriteLine($"{command}\n  exit {run.ExitCode}: {run.Stderr}");

        Assert.True(run.ExitCode == 2, $"{command}: exit {run.ExitCode}, stderr: {run.Stderr}, stdout: {run.Stdout}");
        Assert.True(run.Stdout.Length == 0, $"{command}: stdout not empty: {run.Stdout}");
        string[] lines = run.Stderr.TrimEnd('\n').Split('\n');
        Assert.True(run.Stderr.EndsWith('\n') && lines.Length == 1 && lines[0].StartsWith("error: ") && lines[0].Length > "error: ".Length,
            $"{command}: stderr is not one 'error: …' line: {run.Stderr}");
        Assert.Equal(run.Before, run.After);
        Assert.Equal(runs.SharedBefore, FuzzRun.Snapshot(runs.Inputs.Root));
    }

    /// <summary>The control: the undamaged model, adapter, data and predictions the cases start from are accepted,
    /// so each case above fails because of its damage and not because the fixture is broken.</summary>
    [Fact]
    public async Task TheUndamagedInputsAreAccepted()
    {
        using var dir = new TempFolder();
        var work = new FuzzWork(dir.Path, runs.Inputs);
        string[][] commands =
        [
            ["generate", "--model", runs.Inputs.Model, "--adapter", runs.Inputs.Adapter, "--prompt", "hi", "--max-new-tokens", "1", "--dtype", "f32"],
            ["generate", "--model", work.QuantizedModel(), "--prompt", "hi", "--max-new-tokens", "1", "--dtype", "f32"],
            ["data", "stats", work.GoodData()],
            ["score", "--task", "fpb", "--predictions", work.Write("p.jsonl", "{\"target\": \"positive\", \"output\": \"positive\"}\n")],
        ];
        foreach (string[] args in commands)
        {
            var (exitCode, _, stderr) = await FuzzRun.RunAsync(dir.Path, args);
            Assert.True(exitCode == 0, $"finqlora {string.Join(' ', args)}: exit {exitCode}: {stderr}");
        }
    }
}
