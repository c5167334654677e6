using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Server;

namespace FinQLoRA.Tests.Serving.Operations;

/// <summary>/metrics carries vLLM's series under vLLM's names, labels, types and buckets (what the Gateway API Inference
/// Extension and vLLM dashboards read), with values that follow the requests served; our finqlora_* series stay.</summary>
[Collection(OperationsCollection.Name)]
public sealed class VllmMetricsTests(OperationsFixture f)
{
    private const string M = OperationsFixture.ModelName;

    /// <summary>vLLM's names and Prometheus types.</summary>
    private static readonly (string Name, string Type)[] Series =
    [
        ("vllm:num_requests_running", "gauge"), ("vllm:num_requests_waiting", "gauge"), ("vllm:kv_cache_usage_perc", "gauge"),
        ("vllm:lora_requests_info", "gauge"),
        ("vllm:time_to_first_token_seconds", "histogram"), ("vllm:inter_token_latency_seconds", "histogram"),
        ("vllm:e2e_request_latency_seconds", "histogram"), ("vllm:request_queue_time_seconds", "histogram"),
        ("vllm:prompt_tokens_total", "counter"), ("vllm:generation_tokens_total", "counter"),
        ("vllm:prefix_cache_queries_total", "counter"), ("vllm:prefix_cache_hits_total", "counter"),
    ];

    // vLLM's bucket boundaries (vllm/v1/metrics/loggers.py), written out here apart from the server's copy
    private static readonly double[] TtftBuckets = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0, double.PositiveInfinity];
    private static readonly double[] ItlBuckets = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, double.PositiveInfinity];
    private static readonly double[] LatencyBuckets = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0, double.PositiveInfinity];

    [Fact]
    public async Task EveryVllmSeriesIsThereWithValuesThatFollowTheRequests()
    {
        double startedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        var before = await IdleScrapeAsync();
        var bodies = new[]
        {
            new JsonObject { ["model"] = M, ["prompt"] = "Once upon a time", ["max_tokens"] = 5, ["temperature"] = 0 },
            new JsonObject { ["model"] = OperationsFixture.Adapter, ["prompt"] = "The little dog", ["max_tokens"] = 4, ["temperature"] = 0 },
            new JsonObject { ["model"] = M, ["prompt"] = "Once upon a time there was", ["max_tokens"] = 3, ["temperature"] = 0 },
        };
        int prompt = 0, generated = 0;
        foreach (var body in bodies)
        {
            var (status, answer) = await OperationsFixture.PostAsync(f.Http, "/v1/completions", body);
            Assert.True(status == 200, answer.ToJsonString());
            prompt += answer["usage"]!["prompt_tokens"]!.GetValue<int>();
            generated += answer["usage"]!["completion_tokens"]!.GetValue<int>();
        }
        var after = await IdleScrapeAsync();

        foreach (var (name, type) in Series)
        {
            // a counter is declared under its _total name, as vLLM's client writes the text format
            Assert.True(after.Types.TryGetValue(name, out var declared), $"{name} has no # TYPE line");
            Assert.Equal(type, declared);
            var samples = after.Samples.Where(s => s.Name == name || s.Name.StartsWith(name + "_", StringComparison.Ordinal) && type == "histogram").ToList();
            Assert.True(samples.Count > 0, $"{name} has no samples");
            if (name != "vllm:lora_requests_info")
                Assert.All(samples, s =>
                {
                    Assert.Equal(M, s.Labels["model_name"]); // the served base name, adapter requests included (as vLLM)
                    Assert.Equal("0", s.Labels["engine"]);
                });
        }

        double Delta(string name) => after.One(name).Value - before.One(name).Value;
        Assert.Equal(prompt, Delta("vllm:prompt_tokens_total"));
        Assert.Equal(generated, Delta("vllm:generation_tokens_total"));
        Assert.Equal(prompt, Delta("vllm:prefix_cache_queries_total")); // every prompt is looked up whole
        Assert.InRange(Delta("vllm:prefix_cache_hits_total"), 0, prompt);
        Assert.Equal(bodies.Length, Delta("vllm:time_to_first_token_seconds_count"));
        Assert.Equal(bodies.Length, Delta("vllm:e2e_request_latency_seconds_count"));
        Assert.Equal(bodies.Length, Delta("vllm:request_queue_time_seconds_count"));
        Assert.Equal(generated - bodies.Length, Delta("vllm:inter_token_latency_seconds_count")); // the gaps between a request's tokens
        // a request's latency holds its queue time and its first token's; all are durations
        Assert.True(Delta("vllm:e2e_request_latency_seconds_sum") >= Delta("vllm:time_to_first_token_seconds_sum"));
        Assert.True(Delta("vllm:request_queue_time_seconds_sum") >= 0);

        Assert.Equal(TtftBuckets, after.Buckets("vllm:time_to_first_token_seconds"));
        Assert.Equal(ItlBuckets, after.Buckets("vllm:inter_token_latency_seconds"));
        Assert.Equal(LatencyBuckets, after.Buckets("vllm:e2e_request_latency_seconds"));
        Assert.Equal(LatencyBuckets, after.Buckets("vllm:request_queue_time_seconds"));

        // idle: nothing runs, nothing waits, no slot is held
        Assert.Equal(0, after.One("vllm:num_requests_running").Value);
        Assert.Equal(0, after.One("vllm:num_requests_waiting").Value);
        Assert.Equal(0, after.One("vllm:kv_cache_usage_perc").Value);
        var lora = after.One("vllm:lora_requests_info"); // only the newest label set is kept
        Assert.Equal(OperationsFixture.MaxLoras.ToString(System.Globalization.CultureInfo.InvariantCulture), lora.Labels["max_lora"]); // --max-loras
        Assert.Equal("", lora.Labels["running_lora_adapters"]);
        Assert.Equal("", lora.Labels["waiting_lora_adapters"]);
        // its value is the Unix time of the scheduler's last iteration (vLLM's set_to_current_time)
        Assert.InRange(lora.Value, startedAt - 60, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 60);

        // our own series are still there
        Assert.Equal(prompt, after.Named("finqlora_prompt_tokens_total").Sum(s => s.Value) - before.Named("finqlora_prompt_tokens_total").Sum(s => s.Value));
        Assert.NotEmpty(after.Named("finqlora_requests_total"));
    }

    [Fact]
    public async Task WhileAStreamRunsItHoldsAKvSlotAndItsAdapterIsRunning()
    {
        for (int attempt = 0; ; attempt++)
        {
            var body = OperationsFixture.Long(OperationsFixture.Adapter, maxTokens: 200);
            body["stream"] = true;
            using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(body) };
            using var response = await f.Http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(200, (int)response.StatusCode);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.StartsWith("data: ", await reader.ReadLineAsync());
            Exposition during;
            int running;
            using (f.Priority.Engine.PauseForTests())
            {
                running = f.Priority.Engine.Running;
                during = Exposition.Parse(await f.Http.GetStringAsync("/metrics"));
            }
            string rest = await reader.ReadToEndAsync();
            Assert.EndsWith("data: [DONE]\n\n", rest);
            // the stream cannot end before 200 tokens, yet a loaded machine might let it; then try again
            if (running == 0 && attempt < 3) continue;
            Assert.Equal(1, running);
            Assert.Equal(1, during.One("vllm:num_requests_running").Value);
            double usage = during.One("vllm:kv_cache_usage_perc").Value;
            Assert.InRange(usage, double.Epsilon, 1);
            Assert.Equal(1.0 / f.Priority.Engine.Options.MaxBatch, usage); // one slot of the pool
            var lora = during.One("vllm:lora_requests_info");
            Assert.Equal(OperationsFixture.Adapter, lora.Labels["running_lora_adapters"]);
            Assert.Equal("", lora.Labels["waiting_lora_adapters"]);
            return;
        }
    }

    [Fact]
    public async Task MetricsAreOpenAndWrittenInPrometheusTextFormat()
    {
        using var anonymous = new HttpClient { BaseAddress = f.Priority.Url };
        using var response = await anonymous.GetAsync("/metrics"); // no key, as vLLM's (scrapers carry none)
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        string text = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("vllm_", text); // every registered name was renamed
        Exposition.Parse(text); // every line is a comment, a type or a sample
    }

    [Fact]
    public void RenamingTouchesMetricNamesOnly()
    {
        string text = "# HELP vllm_a_total Help about vllm_a.\n# TYPE vllm_a_total counter\nvllm_a_total{model_name=\"vllm_x\",engine=\"0\"} 3\nfinqlora_b 1\n";
        Assert.Equal("# HELP vllm:a_total Help about vllm_a.\n# TYPE vllm:a_total counter\nvllm:a_total{model_name=\"vllm_x\",engine=\"0\"} 3\nfinqlora_b 1\n",
            MetricsText.Rename(text));
    }

    /// <summary>/metrics once the scheduler has reported an idle iteration (its last report comes just after the last
    /// request's final event).</summary>
    private async Task<Exposition> IdleScrapeAsync()
    {
        for (int i = 0; ; i++)
        {
            var e = Exposition.Parse(await f.Http.GetStringAsync("/metrics"));
            if (e.Named("vllm:kv_cache_usage_perc").Single().Value == 0 && e.Named("vllm:num_requests_running").Single().Value == 0 || i == 200) return e;
            await Task.Delay(10);
        }
    }
}
