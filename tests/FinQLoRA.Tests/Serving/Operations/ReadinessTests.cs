using System.Net.Http.Json;
using FinQLoRA.Server;
using FinQLoRA.Serving;

namespace FinQLoRA.Tests.Serving.Operations;

/// <summary>Liveness and readiness as vLLM deployments probe them: <c>/health</c> answers 200 while the process serves,
/// draining included (a liveness probe that failed would restart the server and end the requests it is finishing);
/// <c>/ready</c> answers 200 once the model is loaded and 503 from the moment the server begins to drain. Neither asks
/// for the key.</summary>
[Collection(OperationsCollection.Name)]
public sealed class ReadinessTests(OperationsFixture f)
{
    [Fact]
    public async Task ADrainingServerIsAliveButNotReady()
    {
        await using var host = await f.OpenAsync(new ServerOptions { ServedModelName = OperationsFixture.ModelName, Port = 0, ApiKey = "k" }, maxBatch: 1, SchedulingPolicy.Fcfs);
        using var http = new HttpClient { BaseAddress = host.Url }; // no key: probes carry none
        Assert.Equal(200, (int)(await http.GetAsync("/health")).StatusCode);
        Assert.Equal(200, (int)(await http.GetAsync("/ready")).StatusCode);

        // a stream is in flight (held in the queue, so that it cannot end first) while the server drains
        http.DefaultRequestHeaders.Authorization = new("Bearer", "k");
        var body = OperationsFixture.Long(OperationsFixture.ModelName, maxTokens: 40);
        body["stream"] = true;
        using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(body) };
        Task<bool> stopping;
        Task<HttpResponseMessage> sending;
        using (host.Engine.PauseForTests())
        {
            sending = http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
            for (int i = 0; host.Engine.Queued == 0; i++)
            {
                Assert.True(i < 3000, "the stream never reached the queue");
                await Task.Delay(10);
            }
            stopping = host.StopAsync(); // begins to drain at once, then waits for the stream
            Assert.Equal(503, (int)(await http.GetAsync("/ready")).StatusCode);
            Assert.Equal(200, (int)(await http.GetAsync("/health")).StatusCode);
            var refused = await http.PostAsJsonAsync("/v1/completions", new { model = OperationsFixture.ModelName, prompt = "x" });
            Assert.Equal(503, (int)refused.StatusCode);
        }
        using var response = await sending;
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        string rest = await reader.ReadToEndAsync();
        Assert.Contains("\"finish_reason\":\"length\"", rest); // the running stream finished
        Assert.True(await stopping);
    }
}
