using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving;

/// <summary>Runtime adapters (vLLM's endpoints, confined to the adapter root) and a bounded load test on loopback.</summary>
public sealed class ServerAdapterAndLoadTests(ServeFixture f) : IClassFixture<ServeFixture>
{
    private async Task<List<string>> ModelIds() =>
        JsonNode.Parse(await f.Http.GetStringAsync("/v1/models"))!["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()).ToList();

    [Fact]
    public async Task RuntimeAdapterServesLikeGenerateAndUnloadingWaitsThenMakesIt404()
    {
        Assert.DoesNotContain("c", await ModelIds());
        Assert.Equal(404, (await f.PostAsync("/v1/completions", ServeFixture.Greedy("c", 0))).Status);

        // Refused: traversal, absolute paths outside the root, a symlink out of it, a broken adapter, the base's name.
        string outside = Path.Combine(f.Dir, "outside");
        CopyDir(Path.Combine(f.AdapterRoot, ServeFixture.RuntimeAdapterPath), outside);
        Directory.CreateSymbolicLink(Path.Combine(f.AdapterRoot, "link-out"), outside);
        string broken = Path.Combine(f.AdapterRoot, "broken");
        CopyDir(Path.Combine(f.AdapterRoot, ServeFixture.RuntimeAdapterPath), broken);
        File.WriteAllText(Path.Combine(broken, "adapter_config.json"), "{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"], \"peft_type\": \"LORA\"}");
        foreach (var (name, path) in new[] { ("x", "../outside"), ("x", outside), ("x", "link-out"), ("x", "c/../../outside"), ("x", "broken"), (ServeFixture.BaseName, "c"), ("bad name", "c") })
        {
            var (status, body) = await f.PostAsync("/v1/load_lora_adapter", new JsonObject { ["lora_name"] = name, ["lora_path"] = path });
            Assert.True(status == 400, $"{name}={path}: {status} {body}");
            Assert.NotNull(body["error"]!["message"]);
        }
        Assert.DoesNotContain("x", await ModelIds());
        Assert.Equal(200, (await f.PostAsync("/v1/completions", ServeFixture.Greedy("a", 0))).Status); // nothing was disturbed

        var (loaded, _) = await f.PostAsync("/v1/load_lora_adapter", new JsonObject { ["lora_name"] = "c", ["lora_path"] = ServeFixture.RuntimeAdapterPath });
        Assert.Equal(200, loaded);
        Assert.Contains("c", await ModelIds());
        for (int p = 0; p < ServeFixture.Prompts.Length; p++)
        {
            var (status, body) = await f.PostAsync("/v1/completions", ServeFixture.Greedy("c", p));
            Assert.Equal(200, status);
            Assert.Equal(f.Reference[("c", p)].Text, body["choices"]![0]!["text"]!.GetValue<string>());
        }
        Assert.Contains(Enumerable.Range(0, ServeFixture.Prompts.Length), p => f.Reference[("c", p)].Text != f.Reference[(ServeFixture.BaseName, p)].Text);

        // Unloading while a request on c runs: the request completes in full, then the name is gone.
        var running = f.PostAsync("/v1/completions", new JsonObject { ["model"] = "c", ["prompt"] = ServeFixture.Prompts[0], ["max_tokens"] = 100, ["temperature"] = 1.0, ["seed"] = 1 });
        while (f.Engine.Running + f.Engine.Queued == 0 && !running.IsCompleted) await Task.Delay(1);
        var (unloaded, _) = await f.PostAsync("/v1/unload_lora_adapter", new JsonObject { ["lora_name"] = "c" });
        Assert.Equal(200, unloaded);
        var (runStatus, runBody) = await running;
        Assert.Equal(200, runStatus);
        Assert.True(runBody["usage"]!["completion_tokens"]!.GetValue<int>() > 0);
        Assert.DoesNotContain("c", await ModelIds());
        Assert.Equal(404, (await f.PostAsync("/v1/completions", ServeFixture.Greedy("c", 0))).Status);
        Assert.Equal(404, (await f.PostAsync("/v1/unload_lora_adapter", new JsonObject { ["lora_name"] = "c" })).Status);
    }

    private static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }

    /// <summary>64 clients × 8 requests of random kinds and lengths: every answer is a 2xx/4xx (never 5xx), every
    /// completed answer is the greedy reference cut to its length, and afterwards no KV slot or queue entry is held.</summary>
    [Fact]
    public async Task BoundedLoadTestWithDisconnectsMalformedAndOversizedBodies()
    {
        int serverErrors = 0, completed = 0, disconnected = 0, refused = 0;
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        using var http = new HttpClient { BaseAddress = f.Url, Timeout = TimeSpan.FromMinutes(2) };
        string[] models = [ServeFixture.BaseName, "a", "b"];

        async Task Client(int client)
        {
            var random = new Random(client);
            for (int i = 0; i < 8; i++)
            {
                int kind = random.Next(10);
                string model = models[random.Next(3)];
                int prompt = random.Next(ServeFixture.Prompts.Length);
                int maxTokens = 1 + random.Next(ServeFixture.MaxTokens);
                var request = ServeFixture.Greedy(model, prompt, maxTokens);
                if (kind <= 1)
                {
                    var status = await Send("{\"model\": \"stories\", \"prompt\": [1, 2" + new string(',', random.Next(3)));
                    if (status != 400) failures.Add($"malformed JSON got {status}");
                    continue;
                }
                if (kind == 2)
                {
                    var status = await Send("{\"model\": \"stories\", \"prompt\": \"" + new string('y', 70_000 + random.Next(10_000)) + "\"}");
                    if (status != 413) failures.Add($"oversized body got {status}");
                    continue;
                }
                bool stream = kind >= 6;
                request["stream"] = stream;
                using var cancel = new CancellationTokenSource();
                using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json") };
                try
                {
                    using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
                    int code = (int)response.StatusCode;
                    if (code >= 500) Interlocked.Increment(ref serverErrors);
                    if (code == 429) { Interlocked.Increment(ref refused); continue; }
                    if (code != 200) { failures.Add($"{code}: {await response.Content.ReadAsStringAsync()}"); continue; }
                    string text;
                    if (!stream) text = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["choices"]![0]!["text"]!.GetValue<string>();
                    else
                    {
                        var sb = new StringBuilder();
                        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel.Token));
                        bool disconnect = kind >= 8;
                        int lines = 0;
                        while (await reader.ReadLineAsync(cancel.Token) is { } line)
                        {
                            if (line.Length == 0 || line == "data: [DONE]") continue;
                            sb.Append(JsonNode.Parse(line[6..])!["choices"]![0]!["text"]!.GetValue<string>());
                            if (disconnect && ++lines == 2) cancel.Cancel(); // the client goes away mid-stream
                        }
                        text = sb.ToString();
                    }
                    var (p, o) = f.ReferenceIds[(model, prompt)];
                    string expected = ServeFixture.AfterPrompt(f.Tokenizer, p, o[..Math.Min(maxTokens, o.Length)]);
                    if (text != expected) failures.Add($"{model}/{prompt}/{maxTokens}: '{text}' != '{expected}'");
                    Interlocked.Increment(ref completed);
                }
                catch (OperationCanceledException) { Interlocked.Increment(ref disconnected); }
            }
        }

        async Task<int> Send(string body)
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            message.Headers.ExpectContinue = true;
            using var response = await http.SendAsync(message);
            if ((int)response.StatusCode >= 500) Interlocked.Increment(ref serverErrors);
            return (int)response.StatusCode;
        }

        Assert.Equal(200, (await f.PostAsync("/v1/completions", ServeFixture.Greedy("a", 2))).Status);
        // both adapters on the device before counting (an adapter's first request brings its weights on)
        Assert.Equal(200, (await f.PostAsync("/v1/completions", ServeFixture.Greedy("b", 2))).Status);
        long liveBefore = await f.Engine.SchedulerLiveTensorsAsync();
        await Task.WhenAll(Enumerable.Range(0, 64).Select(c => Task.Run(() => Client(c))));
        Assert.Empty(failures);
        Assert.Equal(0, serverErrors);
        Assert.True(completed > 200, $"only {completed} requests completed");
        Assert.True(disconnected > 10, $"only {disconnected} clients disconnected");
        // Rows of clients that left are dropped at the next step: soon nothing holds a slot or waits.
        for (int i = 0; i < 500 && f.Engine.Running + f.Engine.Queued > 0; i++) await Task.Delay(10);
        Assert.Equal(0, f.Engine.Running);
        Assert.Equal(0, f.Engine.Queued);
        Assert.Equal(liveBefore, await f.Engine.SchedulerLiveTensorsAsync()); // no native tensor outlived its request
        Assert.Equal(200, (await f.PostAsync("/v1/completions", ServeFixture.Greedy("b", 1))).Status);
        Assert.Equal(HttpStatusCode.OK, (await f.Http.GetAsync("/health")).StatusCode);
        string metrics = await f.Http.GetStringAsync("/metrics");
        Assert.Contains("finqlora_requests_total{model=\"a\",status=\"200\"}", metrics);
        Assert.Contains("finqlora_time_to_first_token_seconds_bucket", metrics);
        Assert.Contains("finqlora_num_requests_running 0", metrics);
        Assert.Contains("finqlora_generation_tokens_total", metrics);
        _ = refused;
    }
}
