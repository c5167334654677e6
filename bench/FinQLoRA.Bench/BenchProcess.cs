using System.Diagnostics;

namespace FinQLoRA.Bench;

/// <summary>
/// Runs this bench executable again as a child process, so that every memory figure is the peak RSS (VmHWM) of a
/// fresh process that did only the thing measured.
/// </summary>
internal static class BenchProcess
{
    /// <summary>Runs <c>FinQLoRA.Bench args…</c>; returns its stdout, throwing with its output when it fails.</summary>
    public static string RunSelf(params string[] args) => Run(SelfCommand(), args);

    /// <summary>Runs <paramref name="command"/> (executable first) with extra args; returns stdout.</summary>
    public static string Run(IReadOnlyList<string> command, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in command.Skip(1).Concat(args)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{string.Join(' ', psi.ArgumentList.Prepend(command[0]))} exited with {p.ExitCode}:\n{stdout.Result}\n{stderr.Result}");
        return stdout.Result;
    }

    /// <summary>The command line that starts this bench: its apphost, or <c>dotnet FinQLoRA.Bench.dll</c>.</summary>
    public static IReadOnlyList<string> SelfCommand()
    {
        string exe = Environment.ProcessPath!;
        return Path.GetFileNameWithoutExtension(exe) == "dotnet" ? [exe, typeof(BenchProcess).Assembly.Location] : [exe];
    }

    /// <summary>The finqlora CLI built beside the bench sources: <c>dotnet src/FinQLoRA.Cli/bin/&lt;config&gt;/…/finqlora.dll</c>.</summary>
    public static IReadOnlyList<string> CliCommand(string repoRoot)
    {
        string bin = Path.Combine(repoRoot, "src", "FinQLoRA.Cli", "bin");
        string? dll = Directory.Exists(bin)
            ? Directory.EnumerateFiles(bin, "finqlora.dll", SearchOption.AllDirectories).OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault()
            : null;
        if (dll is null)
            throw new UserInputException($"{bin}: finqlora.dll not found; build the CLI first (dotnet build -c Release src/FinQLoRA.Cli)");
        return ["dotnet", dll];
    }

    public static string RepoRoot()
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "FinQLoRA.slnx"))) return d.FullName;
        return Directory.GetCurrentDirectory();
    }
}
