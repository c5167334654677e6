using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using FinQLoRA.Distributed;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Distributed;

/// <summary>One finished <c>mpirun</c> job: its exit code, its output and the "R&lt;rank&gt; &lt;name&gt; &lt;values&gt;"
/// lines the test host printed.</summary>
public sealed partial record MpiJob(int ExitCode, string Output, TimeSpan Elapsed)
{
    /// <summary>Runs <c>mpirun -np <paramref name="ranks"/></c> on a program; see <see cref="RunProcess"/>.</summary>
    public static MpiJob Run(int ranks, string program, IReadOnlyList<string> programArguments, TimeSpan limit, IReadOnlyDictionary<string, string>? environment = null) =>
        RunProcess(MpiLauncher.FindMpirun(), MpiLauncher.BuildArguments(ranks, program, [], programArguments, MpiLauncher.RunningAsRoot()), limit, environment);

    /// <summary>Runs a program with stdin closed and stdout+stderr captured; kills the whole process tree and fails
    /// the test when it outlives <paramref name="limit"/> (that is, when it hangs).</summary>
    public static MpiJob RunProcess(string fileName, IReadOnlyList<string> arguments, TimeSpan limit, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;

        var output = new StringBuilder();
        var clock = Stopwatch.StartNew();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (output) output.AppendLine(e.Data); };
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            lock (output) Assert.Fail($"{fileName} {string.Join(' ', arguments)} still running after {limit.TotalSeconds} s (hang); killed. Output:\n{output}");
        }
        process.WaitForExit(); // drains the asynchronous readers
        lock (output) return new MpiJob(process.ExitCode, output.ToString(), clock.Elapsed);
    }

    /// <summary>Runs the test host (tests/FinQLoRA.MpiHost) with one scenario on 2 ranks.</summary>
    public static MpiJob RunHost(string scenario, TimeSpan limit, IReadOnlyDictionary<string, string>? environment = null)
    {
        string host = Path.Combine(AppContext.BaseDirectory, "FinQLoRA.MpiHost.dll");
        Assert.True(File.Exists(host), $"test host not built: {host}");
        return Run(2, Dotnet, [host, scenario], limit, environment);
    }

    /// <summary>The dotnet executable running these tests.</summary>
    public static string Dotnet =>
        Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";

    /// <summary>The values a rank printed under <paramref name="name"/>.</summary>
    public double[] Values(int rank, string name) =>
        Text(rank, name).Split(',').Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    /// <summary>The text a rank printed under <paramref name="name"/>; fails with the whole output when absent.</summary>
    public string Text(int rank, string name)
    {
        foreach (Match match in ResultLine().Matches(Output))
            if (match.Groups[1].Value == rank.ToString(System.Globalization.CultureInfo.InvariantCulture) && match.Groups[2].Value == name)
                return match.Groups[3].Value.Trim();
        Assert.Fail($"rank {rank} printed no '{name}' line (exit code {ExitCode}). Output:\n{Output}");
        return "";
    }

    public bool Printed(int rank, string name) =>
        ResultLine().Matches(Output).Any(m => m.Groups[1].Value == rank.ToString(System.Globalization.CultureInfo.InvariantCulture) && m.Groups[2].Value == name);

    [GeneratedRegex(@"R(\d+) (\S+) ?([^\r\n]*)")]
    private static partial Regex ResultLine();
}

/// <summary>mpirun jobs run one at a time and apart from the other tests: each one starts several processes on a
/// small machine, and the hang tests measure how long a job takes to end.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MpiCollection
{
    public const string Name = "mpirun";
}
