using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Fuzz;

/// <summary>What one fuzz case did: its arguments, the process's exit code and streams, and its folder before and after.</summary>
internal sealed record FuzzRun(string[] Args, int ExitCode, string Stdout, string Stderr, List<string> Before, List<string> After)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(300);

    /// <summary>
    /// Prepares every case in its own folder under <paramref name="root"/>, then runs the real finqlora process for
    /// each, a few at a time (each is a second of JIT and library loading, mostly spent waiting), and snapshots each
    /// folder after its process exits.
    /// </summary>
    public static IReadOnlyDictionary<string, Task<FuzzRun>> StartAll(IReadOnlyList<FuzzCase> cases, FuzzInputs inputs, string root)
    {
        var prepared = cases.Select((c, i) =>
        {
            string dir = Path.Combine(root, i.ToString("D3"));
            Directory.CreateDirectory(dir);
            string[] args = c.Prepare(new FuzzWork(dir, inputs));
            return (c.Name, Dir: dir, Args: args, Before: Snapshot(dir));
        }).ToList();
        var gate = new SemaphoreSlim(Math.Clamp(Environment.ProcessorCount, 1, 4));
        return prepared.ToDictionary(p => p.Name, p => Task.Run(async () =>
        {
            await gate.WaitAsync();
            try
            {
                var (exitCode, stdout, stderr) = await RunAsync(p.Dir, p.Args);
                return new FuzzRun(p.Args, exitCode, stdout, stderr, p.Before, Snapshot(p.Dir));
            }
            finally { gate.Release(); }
        }));
    }

    /// <summary>Every file and folder under <paramref name="root"/> with its size: new, deleted or rewritten entries show.</summary>
    public static List<string> Snapshot(string root) =>
        Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories)
            .Select(p => $"{Path.GetRelativePath(root, p)} {(File.Exists(p) ? new FileInfo(p).Length : -1)}")
            .Order(StringComparer.Ordinal).ToList();

    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string workingDirectory, string[] args)
    {
        // Nothing may reach a network or a shared cache: a Hub case that got past validation fails on a closed
        // port, and any cache it wrote would land in the work folder and fail the snapshot.
        var options = new CliRunOptions
        {
            WorkingDirectory = workingDirectory,
            Environment = new Dictionary<string, string?>
            {
                ["HF_ENDPOINT"] = "http://127.0.0.1:9/", ["HF_TOKEN"] = "", ["FINQLORA_CACHE"] = Path.Combine(workingDirectory, "cache"),
                ["NO_COLOR"] = "1", ["FINQLORA_VERBOSE"] = null,
            },
        };
        var r = await CliProcess.RunAsync(options, Timeout, args);
        return (r.ExitCode, r.Stdout, r.Stderr);
    }
}
