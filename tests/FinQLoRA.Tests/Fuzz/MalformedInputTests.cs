using System.Diagnostics;
using FinQLoRA.Tests.Support;
using Xunit.Abstractions;

namespace FinQLoRA.Tests.Fuzz;

/// <summary>
/// The CLI's contract for bad input, over the whole fuzz corpus (<see cref="FuzzCorpus"/>): the real finqlora
/// process exits 2 with exactly one line on stderr, prints nothing on stdout (which may carry --json) and leaves its
/// working and output folders as they were.
/// </summary>
public sealed class MalformedInputTests(FuzzInputs inputs, ITestOutputHelper output) : IClassFixture<FuzzInputs>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    public static TheoryData<string> Cases() => new(FuzzCorpus.All.Select(c => c.Name));

    [Theory]
    [MemberData(nameof(Cases))]
    public void MalformedInputExits2WithOneLineOnStderrAndWritesNothing(string name)
    {
        var fuzzCase = FuzzCorpus.All.Single(c => c.Name == name);
        using var dir = new TempFolder();
        var work = new FuzzWork(dir.Path, inputs);
        string[] args = fuzzCase.Prepare(work);
        var before = Snapshot(dir.Path);
        var sharedBefore = Snapshot(Path.GetDirectoryName(inputs.Model)!);

        var (exitCode, stdout, stderr) = Run(dir.Path, args);

        string command = $"finqlora {string.Join(' ', args.Select(a => a.Length > 80 ? a[..80] + "…" : a))}";
        output.WriteLine($"{command}\n  exit {exitCode}: {stderr}");
        Assert.True(exitCode == 2, $"{command}: exit {exitCode}, stderr: {stderr}, stdout: {stdout}");
        Assert.True(stdout.Length == 0, $"{command}: stdout not empty: {stdout}");
        string[] lines = stderr.TrimEnd('\n').Split('\n');
        Assert.True(stderr.EndsWith('\n') && lines.Length == 1 && lines[0].StartsWith("error: ") && lines[0].Length > "error: ".Length,
            $"{command}: stderr is not one 'error: …' line: {stderr}");
        Assert.Equal(before, Snapshot(dir.Path));
        Assert.Equal(sharedBefore, Snapshot(Path.GetDirectoryName(inputs.Model)!));
    }

    /// <summary>The control: the undamaged model, adapter, data and predictions the cases start from are accepted,
    /// so each case above fails because of its damage and not because the fixture is broken.</summary>
    [Fact]
    public void TheUndamagedInputsAreAccepted()
    {
        using var dir = new TempFolder();
        var work = new FuzzWork(dir.Path, inputs);
        string[][] commands =
        [
            ["generate", "--model", inputs.Model, "--adapter", inputs.Adapter, "--prompt", "hi", "--max-new-tokens", "1", "--dtype", "f32"],
            ["data", "stats", work.GoodData()],
            ["score", "--task", "fpb", "--predictions", work.Write("p.jsonl", "{\"target\": \"positive\", \"output\": \"positive\"}\n")],
        ];
        foreach (string[] args in commands)
        {
            var (exitCode, _, stderr) = Run(dir.Path, args);
            Assert.True(exitCode == 0, $"finqlora {string.Join(' ', args)}: exit {exitCode}: {stderr}");
        }
    }

    /// <summary>Every file and folder under <paramref name="root"/> with its size: new, deleted or rewritten entries show.</summary>
    private static List<string> Snapshot(string root) =>
        Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories)
            .Select(p => $"{Path.GetRelativePath(root, p)} {(File.Exists(p) ? new FileInfo(p).Length : -1)}")
            .Order(StringComparer.Ordinal).ToList();

    private static (int ExitCode, string Stdout, string Stderr) Run(string workingDirectory, string[] args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workingDirectory,
        };
        psi.ArgumentList.Add(CliProcess.CliDll);
        foreach (string a in args) psi.ArgumentList.Add(a);
        // Nothing may reach a network or a shared cache: a Hub case that got past validation fails on a closed
        // port, and any cache it wrote would land in the work folder and fail the snapshot.
        psi.Environment["HF_ENDPOINT"] = "http://127.0.0.1:9/";
        psi.Environment["HF_TOKEN"] = "";
        psi.Environment["FINQLORA_CACHE"] = Path.Combine(workingDirectory, "cache");
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment.Remove("FINQLORA_VERBOSE");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(Timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"finqlora {string.Join(' ', args)} did not finish within {Timeout}");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
