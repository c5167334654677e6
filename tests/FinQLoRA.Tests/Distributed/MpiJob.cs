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

    /// <summary>Runs a program (mpirun, or the CLI alone) through <see cref="CliProcess"/> with stdin closed and
    /// stdout+stderr captured; past <paramref name="limit"/> (a hang) the whole process tree is killed and the test fails.</summary>
    public static MpiJob RunProcess(string fileName, IReadOnlyList<string> arguments, TimeSpan limit, IReadOnlyDictionary<string, string>? environment = null)
    {
        var options = new CliRunOptions
        {
            CloseStdin = true,
            Environment = (environment ?? new Dictionary<string, string>()).ToDictionary(kv => kv.Key, kv => (string?)kv.Value),
        };
        var r = CliProcess.RunProgram(fileName, arguments, limit, options);
        return new MpiJob(r.ExitCode, r.Output, r.Elapsed);
    }

    /// <summary>Runs the test host (tests/FinQLoRA.MpiHost) with one scenario on 2 ranks.</summary>
    public static MpiJob RunHost(string scenario, TimeSpan limit, IReadOnlyDictionary<string, string>? environment = null)
    {
        string host = Path.Combine(AppContext.BaseDirectory, "FinQLoRA.MpiHost.dll");
        Assert.True(File.Exists(host), $"test host not built: {host}");
        return Run(2, CliProcess.Dotnet, [host, scenario], limit, environment);
    }

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
