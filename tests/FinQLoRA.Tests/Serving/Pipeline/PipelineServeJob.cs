using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using FinQLoRA.Distributed;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving.Pipeline;

/// <summary>
/// <c>mpirun -np 2 finqlora serve --pipeline-stages 2 …</c> running in the background: started, its URL read from
/// rank 0's startup line, its output collected; disposing ends the job (SIGTERM to mpirun, which passes it on, then
/// the process tree is killed if it has not ended).
/// </summary>
internal sealed partial class PipelineServeJob : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<Uri> _url = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private PipelineServeJob(Process process) => _process = process;

    public Uri Url => _url.Task.Result;
    public string Output { get { lock (_output) return _output.ToString(); } }
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    public static async Task<PipelineServeJob> StartAsync(IReadOnlyList<string> serveArguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(MpiLauncher.FindMpirun())
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        foreach (string a in MpiLauncher.BuildArguments(2, CliProcess.Dotnet, [], [CliProcess.CliDll, "serve", .. serveArguments], MpiLauncher.RunningAsRoot()))
            start.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) start.Environment[k] = v;
        var job = new PipelineServeJob(Process.Start(start)!);
        job._process.StandardInput.Close();
        job._process.OutputDataReceived += (_, e) => job.Line(e.Data);
        job._process.ErrorDataReceived += (_, e) => job.Line(e.Data);
        job._process.BeginOutputReadLine();
        job._process.BeginErrorReadLine();
        var exited = job._process.WaitForExitAsync();
        var first = await Task.WhenAny(job._url.Task, exited, Task.Delay(TimeSpan.FromMinutes(3)));
        if (first != job._url.Task)
        {
            string output = job.Output;
            await job.DisposeAsync();
            Assert.Fail($"the pipeline server did not start:\n{output}");
        }
        return job;
    }

    /// <summary>Waits for the job to end by itself; false past <paramref name="limit"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan limit)
    {
        var exited = _process.WaitForExitAsync();
        return await Task.WhenAny(exited, Task.Delay(limit)) == exited;
    }

    private void Line(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
        if (line.StartsWith("finqlora serve: http://", StringComparison.Ordinal)) _url.TrySetResult(new Uri(UrlPattern().Match(line).Value));
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
            if (!await WaitForExitAsync(TimeSpan.FromSeconds(60))) _process.Kill(entireProcessTree: true);
        }
        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    [GeneratedRegex(@"http://[^ ]+")]
    private static partial Regex UrlPattern();
}
