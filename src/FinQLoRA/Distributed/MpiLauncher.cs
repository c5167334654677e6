using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;

namespace FinQLoRA.Distributed;

/// <summary>
/// Starts N copies of the current program under Open MPI's <c>mpirun</c> and waits for them:
/// <c>mpirun --oversubscribe [--allow-run-as-root] -np N &lt;this program&gt; &lt;args&gt;</c>. Each copy finds its rank
/// through <see cref="LaunchEnvironment"/>. <c>--oversubscribe</c> lets N exceed the core count (small machines,
/// tests); <c>--allow-run-as-root</c> is added only for uid 0, where mpirun refuses to start without it.
/// </summary>
public static partial class MpiLauncher
{
    /// <summary>The mpirun command line (without "mpirun" itself).</summary>
    public static IReadOnlyList<string> BuildArguments(int ranks, string program, IReadOnlyList<string> programPrefix, IReadOnlyList<string> arguments, bool runningAsRoot)
    {
        if (ranks < 1) throw new UserInputException($"launch: -n {ranks} is not a rank count; give -n 1 or more");
        var result = new List<string> { "--oversubscribe" };
        if (runningAsRoot) result.Add("--allow-run-as-root");
        result.AddRange(["-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), program]);
        result.AddRange(programPrefix);
        result.AddRange(arguments);
        return result;
    }

    /// <summary>How to start this program again: the apphost itself, or <c>dotnet &lt;entry assembly&gt;</c> when it
    /// was started through <c>dotnet</c>.</summary>
    public static (string Program, IReadOnlyList<string> Prefix) CurrentProgram()
    {
        string process = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell the path of the running program");
        if (Path.GetFileNameWithoutExtension(process) != "dotnet") return (process, []);
        string entry = Assembly.GetEntryAssembly()?.Location is { Length: > 0 } location
            ? location
            : throw new InvalidOperationException("cannot tell the entry assembly of the running program");
        return (process, [entry]);
    }

    /// <summary>Runs <paramref name="arguments"/> of this program on <paramref name="ranks"/> ranks; returns mpirun's exit code.</summary>
    public static int Run(int ranks, IReadOnlyList<string> arguments)
    {
        string mpirun = FindMpirun();
        var (program, prefix) = CurrentProgram();
        var start = new ProcessStartInfo(mpirun) { UseShellExecute = false };
        foreach (string argument in BuildArguments(ranks, program, prefix, arguments, RunningAsRoot())) start.ArgumentList.Add(argument);

        // Ctrl+C reaches mpirun too (same process group); it stops the ranks and exits, and we report its code.
        ConsoleCancelEventHandler keepWaiting = (_, e) => e.Cancel = true;
        Console.CancelKeyPress += keepWaiting;
        try
        {
            using Process process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {mpirun}");
            process.WaitForExit();
            return process.ExitCode;
        }
        finally
        {
            Console.CancelKeyPress -= keepWaiting;
        }
    }

    /// <summary>mpirun on PATH, or a one-line explanation of how to install it.</summary>
    public static string FindMpirun()
    {
        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, "mpirun");
            if (File.Exists(candidate)) return candidate;
        }
        throw new UserInputException("mpirun not found on PATH; install Open MPI with: apt-get install -y openmpi-bin libopenmpi-dev (or run .ci/install-deps.sh)");
    }

    public static bool RunningAsRoot() => OperatingSystem.IsLinux() && geteuid() == 0;

    [LibraryImport("libc")]
    private static partial uint geteuid();
}
