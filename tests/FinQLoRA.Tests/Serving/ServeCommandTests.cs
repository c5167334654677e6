using FinQLoRA.Loading;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Server;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving;

/// <summary><c>finqlora serve</c> as a process: flags checked before the model loads, the startup line, and SIGTERM
/// letting an in-flight stream finish before exit 0; and 503 once a server is stopping.</summary>
public sealed partial class ServeCommandTests
{
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    [Fact]
    public void FlagsAreCheckedBeforeTheModelLoads()
    {
        // The model path does not exist: each error below must come first, proving the order.
        (string[] Args, string Says)[] cases =
        [
            (["--host", "0.0.0.0"], "needs --api-key"),
            (["--host", "0.0.0.0", "--api-key", ""], "--api-key must not be empty"),
            (["--max-batch", "0"], "--max-batch"),
            (["--bits", "5"], "--bits 5"),
            (["--port", "70000"], "--port 70000"),
            (["--adapter-root", "/no/such/dir"], "--adapter-root"),
            (["--adapter", "a=/no/such/adapter"], "adapter folder not found"),
            (["--dtype", "f64"], "--dtype"),
            (["--prefix-cache-gib", "-1"], "--prefix-cache-gib must be a number of GiB >= 0 (got -1)"),
            (["--prefix-cache-gib", "NaN"], "--prefix-cache-gib must be a number of GiB >= 0"),
            (["--scheduling-policy", "lifo"], "--scheduling-policy must be fcfs or priority (got 'lifo')"),
        ];
        foreach (var (args, says) in cases)
        {
            var (code, output) = CliProcess.Run(TimeSpan.FromMinutes(1), ["serve", "--model", "/no/such/model", .. args]);
            Assert.True(code == 2, $"{string.Join(' ', args)}: exit {code}: {output}");
            Assert.Contains(says, output);
            Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
    }

    [Fact]
    public async Task SigtermLetsTheRunningStreamFinishThenExitsZero()
    {
        using var dir = new TempFolder();
        string stories = SeededLlama.CopyTo(dir.PathOf("stories260K-hf")); // any Llama; the served name comes from the folder
        // the longest stream the model's 512 positions allow: the managed batch-1 step writes a token in well under a
        // millisecond, so a short stream could end before the signal and the check of the draining server
        using var process = CliProcess.Start("serve", "--model", stories, "--dtype", "f32", "--port", "0", "--max-model-len", "512");
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            string line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(1)) ?? throw new InvalidOperationException(await stderr);
            Assert.Contains("serving 'stories260K-hf'", line);
            Assert.Contains("context 512", line);
            Assert.Contains("prefix cache 1 GiB", line);
            var url = new Uri(UrlPattern().Match(line).Value);
            Assert.True(url.IsLoopback);

            using var http = new HttpClient { BaseAddress = url };
            var request = new JsonObject { ["model"] = "stories260K-hf", ["prompt"] = "Once upon a time", ["max_tokens"] = 500, ["temperature"] = 1.0, ["seed"] = 5, ["stream"] = true };
            using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json") };
            using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.StartsWith("data: ", await reader.ReadLineAsync());
            Assert.Equal(0, kill(process.Id, 15)); // SIGTERM while the stream runs
            // the server still listens while it drains: a new connection is answered 503, not refused
            using (var other = new HttpClient { BaseAddress = url })
            {
                var late = await RetryUntilStoppingAsync(other);
                Assert.Equal(HttpStatusCode.ServiceUnavailable, late.StatusCode);
                Assert.Contains("shutting_down", await late.Content.ReadAsStringAsync());
            }
            var rest = await reader.ReadToEndAsync();
            Assert.Matches("\"finish_reason\":\"(length|stop)\"", rest); // ran to its own end: the token limit or a sampled EOS
            Assert.EndsWith("data: [DONE]\n\n", rest);
            Assert.True(process.WaitForExit(TimeSpan.FromMinutes(1)));
            Assert.Equal(0, process.ExitCode);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    /// <summary>The signal is handled asynchronously: ask /ready until it says the server is stopping.</summary>
    private static async Task<HttpResponseMessage> RetryUntilStoppingAsync(HttpClient http)
    {
        for (int i = 0; i < 100; i++)
        {
            var ready = await http.GetAsync("/ready");
            if (ready.StatusCode == HttpStatusCode.ServiceUnavailable) break;
            await Task.Delay(50);
        }
        var body = new JsonObject { ["model"] = "stories260K-hf", ["prompt"] = "Once", ["max_tokens"] = 1 };
        return await http.PostAsync("/v1/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
    }

    [Fact]
    public async Task AStoppingServerAnswers503AndItsReadinessSaysSo()
    {
        await using var host = ServerHost.Open(new ServerHostOptions
        {
            ModelPath = SeededLlama.Folder, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Server = new ServerOptions { ServedModelName = "s", Port = 0 }, MaxBatch = 2, MaxModelLen = 64,
        });
        var (server, engine) = (host.Server, host.Engine);
        await host.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Url };
        var body = new StringContent("{\"model\": \"s\", \"prompt\": \"Once\", \"max_tokens\": 3}", Encoding.UTF8, "application/json");
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/v1/completions", body)).StatusCode);
        server.BeginShutdown();
        var refused = await http.PostAsync("/v1/completions", new StringContent("{\"model\": \"s\", \"prompt\": \"Once\"}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("shutting_down", JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await http.GetAsync("/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode); // alive while it drains
        Assert.Equal(ServingErrorKind.ShuttingDown, Assert.Throws<ServingException>(() => engine.Submit(new EngineRequest([1, 2], null, new SamplingParams()))).Kind);
        await server.StopAsync();
    }

    [GeneratedRegex(@"http://[^ ]+")]
    private static partial Regex UrlPattern();
}
