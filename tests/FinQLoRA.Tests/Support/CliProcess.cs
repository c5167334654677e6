using System.Diagnostics;

namespace FinQLoRA.Tests.Support;

/// <summary>Runs the built <c>finqlora</c> CLI (copied beside the tests) as a child process.</summary>
public static class CliProcess
{
    public static string CliDll => Path.Combine(AppContext.BaseDirectory, "finqlora.dll");

    public static Process Start(params string[] args) => Start(new Dictionary<string, string>(), args);

    /// <summary>Starts the CLI with <paramref name="environment"/> added to this process's environment.</summary>
    public static Process Start(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (name, value) in environment) psi.Environment[name] = value;
        psi.ArgumentList.Add(CliDll);
        foreach (string a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    public static (int ExitCode, string Output) Run(TimeSpan timeout, params string[] args) =>
        Run(timeout, new Dictionary<string, string>(), args);

    public static (int ExitCode, string Output) Run(TimeSpan timeout, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        using var p = Start(environment, args);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"finqlora {string.Join(' ', args)} did not finish within {timeout}");
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>Runs the CLI with stdout and stderr kept apart (for checks that stdout stays clean).</summary>
    public static (int ExitCode, string Stdout, string Stderr) RunSeparately(TimeSpan timeout, params string[] args) =>
        RunSeparatelyIn(null, timeout, args);

    public static (int ExitCode, string Stdout, string Stderr) RunSeparatelyIn(string? workingDirectory, TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory != null) psi.WorkingDirectory = workingDirectory;
        psi.ArgumentList.Add(CliDll);
        foreach (string a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"finqlora {string.Join(' ', args)} did not finish within {timeout}");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Asserts the contract for bad input: exit 2, one line on stderr, nothing on stdout.</summary>
    public static string AssertOneLineError((int ExitCode, string Stdout, string Stderr) r, string? contains = null)
    {
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(r.ExitCode == 2 && lines.Length == 1 && r.Stdout.Length == 0,
            $"exit {r.ExitCode}, stdout [{r.Stdout}], stderr [{r.Stderr}]");
        if (contains != null) Assert.Contains(contains, lines[0]);
        return lines[0];
    }
}
