using System.Net.Http.Json;
using System.Text.RegularExpressions;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving.Audit;

/// <summary><c>finqlora serve --audit-log</c> as a process: its flags checked before the model loads, and a kill -9
/// under concurrent load leaving a file whose every line parses.</summary>
public sealed partial class AuditCommandTests
{
    [Fact]
    public void AuditFlagsAreCheckedBeforeTheModelLoads()
    {
        using var dir = new TempFolder();
        string notOurs = dir.Write("notes.txt", "my notes\n");
        (string[] Args, string Says)[] cases =
        [
            (["--audit-content"], "--audit-content needs --audit-log FILE"),
            (["--audit-log", dir.PathOf("a.jsonl"), "--audit-log-max-mib", "0"], "--audit-log-max-mib must be at least 1 (got 0)"),
            (["--audit-log", dir.PathOf("a.jsonl"), "--audit-log-keep", "0"], "--audit-log-keep must be at least 1 (got 0)"),
            (["--audit-log", "/no/such/dir/a.jsonl"], "--audit-log /no/such/dir/a.jsonl: folder /no/such/dir not found"),
            (["--audit-log", notOurs], "is not a FinQLoRA audit log"),
        ];
        foreach (var (args, says) in cases)
        {
            var r = CliProcess.RunSeparately(TimeSpan.FromMinutes(1), ["serve", "--model", "/no/such/model", .. args]);
            Assert.Contains(says, CliProcess.AssertOneLineError(r));
        }
        Assert.Equal("my notes\n", File.ReadAllText(notOurs));
    }

    [Fact]
    public async Task KillNineUnderLoadLeavesOnlyWholeLines()
    {
        using var dir = new TempFolder();
        string model = SeededLlama.CopyTo(dir.PathOf("stories"));
        string file = dir.PathOf("audit.jsonl");
        using var process = CliProcess.Start("serve", "--model", model, "--dtype", "f32", "--port", "0", "--max-model-len", "128",
            "--max-batch", "8", "--audit-log", file, "--audit-content");
        var stderr = process.StandardError.ReadToEndAsync();
        using var stop = new CancellationTokenSource();
        Task[] clients = [];
        try
        {
            string line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(1)) ?? throw new InvalidOperationException(await stderr);
            Assert.Contains("audit log " + file, line);
            using var http = new HttpClient { BaseAddress = new Uri(UrlPattern().Match(line).Value) };
            clients = Enumerable.Range(0, 16).Select(c => Task.Run(async () =>
            {
                for (int i = 0; !stop.IsCancellationRequested; i++)
                {
                    var body = new { model = "stories", prompt = $"Once upon a time {c} {i}", max_tokens = 24, temperature = 1.0, stream = i % 2 == 0 };
                    try { using var _ = await http.PostAsJsonAsync("/v1/completions", body, stop.Token); }
                    catch (Exception) when (stop.IsCancellationRequested || process.HasExited) { return; }
                    catch (HttpRequestException) when (process.HasExited) { return; }
                }
            })).ToArray();
            // kill while requests are running and lines are being written
            for (int wait = 0; AuditLines.ReadText(file).Count(ch => ch == '\n') < 40; wait++)
            {
                Assert.True(wait < 1200, "fewer than 40 audit lines after 2 minutes: " + AuditLines.ReadText(file));
                await Task.Delay(100);
            }
            process.Kill(); // SIGKILL: no handler, no flush, no drain
            Assert.True(process.WaitForExit(TimeSpan.FromMinutes(1)));
        }
        finally
        {
            stop.Cancel();
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        await Task.WhenAll(clients.Select(c => c.ContinueWith(_ => { }, TaskScheduler.Default)));

        var lines = AuditLines.Read(file); // every line parses; the file ends with a newline
        Assert.True(lines.Count >= 40, $"{lines.Count} lines");
        Assert.Equal(lines.Count, lines.Select(l => l.GetProperty("request_id").GetString()).Distinct().Count());
        Assert.All(lines, l => Assert.Equal("/v1/completions", l.GetProperty("endpoint").GetString()));
    }

    [GeneratedRegex(@"http://[^ ]+")]
    private static partial Regex UrlPattern();
}
