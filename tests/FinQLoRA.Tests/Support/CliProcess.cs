using System.Diagnostics;

namespace FinQLoRA.Tests.Support;

/// <summary>
/// The one way tests launch the built <c>finqlora</c> CLI (copied beside the tests) and the programs that wrap it
/// (mpirun, a pseudo-terminal, a private mount namespace): stdout and stderr read to the end, a time limit after which
/// the whole process tree is killed and the test fails with what the process had written.
/// </summary>
public static class CliProcess
{
    public static string CliDll => Path.Combine(AppContext.BaseDirectory, "finqlora.dll");

    /// <summary>The dotnet executable running these tests.</summary>
    public static string Dotnet =>
        Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";

    /// <summary>The program arguments that run the CLI with <paramref name="args"/> under <see cref="Dotnet"/> (e.g. for mpirun).</summary>
    public static List<string> Arguments(IEnumerable<string> args) => [CliDll, .. args];

    /// <summary>The CLI as one sh command line, every word single-quoted, with <paramref name="environment"/> set for it
    /// alone (<c>env NAME=VALUE …</c>), for tests that run it inside a shell script or under <c>script</c>.</summary>
    public static string ShellCommand(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        IEnumerable<string> words = environment.Count == 0 ? [] : ["env", .. environment.Select(kv => $"{kv.Key}={kv.Value}")];
        return string.Join(' ', words.Concat(["dotnet", CliDll]).Concat(args).Select(w => "'" + w.Replace("'", "'\\''") + "'"));
    }

    public static string ShellCommand(params string[] args) => ShellCommand(new Dictionary<string, string>(), args);

    /// <summary>Starts the CLI with stdout and stderr redirected, for tests that signal or kill it; the caller waits.</summary>
    public static Process Start(params string[] args) => Process.Start(StartInfo("dotnet", Arguments(args), new CliRunOptions()))!;

    /// <summary>Runs the CLI; returns the exit code and stdout followed by stderr.</summary>
    public static (int ExitCode, string Output) Run(TimeSpan timeout, params string[] args) =>
        Run(timeout, new Dictionary<string, string>(), args);

    /// <summary>Runs the CLI with <paramref name="environment"/> added to this process's environment.</summary>
    public static (int ExitCode, string Output) Run(TimeSpan timeout, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var r = Run(new CliRunOptions { Environment = environment.ToDictionary(kv => kv.Key, kv => (string?)kv.Value) }, timeout, args);
        return (r.ExitCode, r.Output);
    }

    /// <summary>Runs the CLI with stdout and stderr kept apart (for checks that stdout stays clean).</summary>
    public static CliResult RunSeparately(TimeSpan timeout, params string[] args) => Run(new CliRunOptions(), timeout, args);

    public static CliResult RunSeparatelyIn(string? workingDirectory, TimeSpan timeout, params string[] args) =>
        Run(new CliRunOptions { WorkingDirectory = workingDirectory }, timeout, args);

    public static CliResult Run(CliRunOptions options, TimeSpan timeout, params string[] args) =>
        RunProgram("dotnet", Arguments(args), timeout, options);

    public static Task<CliResult> RunAsync(CliRunOptions options, TimeSpan timeout, params string[] args) =>
        RunProgramAsync("dotnet", Arguments(args), timeout, options);

    /// <summary>Runs the CLI under a pseudo-terminal (util-linux <c>script</c>), as a user's shell or mpirun gives it one;
    /// <paramref name="environment"/> is set for the CLI only. Everything the CLI writes arrives on stdout.</summary>
    public static CliResult RunUnderTerminal(TimeSpan timeout, IReadOnlyDictionary<string, string> environment, params string[] args) =>
        RunProgram("script", ["-qec", ShellCommand(environment, args), "/dev/null"], timeout);

    /// <summary>Runs any program (mpirun, unshare, …) the way the CLI is run; see <see cref="RunProgramAsync"/>.</summary>
    public static CliResult RunProgram(string fileName, IEnumerable<string> arguments, TimeSpan timeout, CliRunOptions? options = null) =>
        RunProgramAsync(fileName, arguments, timeout, options).GetAwaiter().GetResult();

    /// <summary>Runs a program to its exit. Past <paramref name="timeout"/> (a hang) its whole process tree is killed and
    /// a <see cref="TimeoutException"/> carries the command and all it wrote.</summary>
    public static async Task<CliResult> RunProgramAsync(string fileName, IEnumerable<string> arguments, TimeSpan timeout, CliRunOptions? options = null)
    {
        options ??= new CliRunOptions();
        var start = StartInfo(fileName, arguments, options);
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(start)!;
        if (options.CloseStdin) p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(timeout);
        try { await p.WaitForExitAsync(limit.Token).ConfigureAwait(false); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync().ConfigureAwait(false);
            throw new TimeoutException($"{fileName} {string.Join(' ', start.ArgumentList)} still running after {timeout.TotalSeconds} s (hang); killed. " +
                                       $"Output:\n{await stdout.ConfigureAwait(false)}{await stderr.ConfigureAwait(false)}");
        }
        return new CliResult(p.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false)) { Elapsed = clock.Elapsed };
    }

    /// <summary>Asserts the contract for bad input: exit 2, one line on stderr, nothing on stdout.</summary>
    public static string AssertOneLineError(CliResult r, string? contains = null)
    {
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(r.ExitCode == 2 && lines.Length == 1 && r.Stdout.Length == 0,
            $"exit {r.ExitCode}, stdout [{r.Stdout}], stderr [{r.Stderr}]");
        if (contains != null) Assert.Contains(contains, lines[0]);
        return lines[0];
    }

    private static ProcessStartInfo StartInfo(string fileName, IEnumerable<string> arguments, CliRunOptions options)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = options.CloseStdin, UseShellExecute = false,
        };
        if (options.WorkingDirectory != null) start.WorkingDirectory = options.WorkingDirectory;
        foreach (string a in arguments) start.ArgumentList.Add(a);
        foreach (var (name, value) in options.Environment)
            if (value == null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        return start;
    }
}
