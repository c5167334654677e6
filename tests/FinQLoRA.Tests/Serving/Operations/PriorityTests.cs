using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Serving;

namespace FinQLoRA.Tests.Serving.Operations;

/// <summary>vLLM's per-request <c>priority</c>: under <c>--scheduling-policy priority</c> the waiting queue admits the
/// lowest value first (ties by arrival); under first come, first served a priority other than 0 is a 400 naming it.</summary>
[Collection(OperationsCollection.Name)]
public sealed class PriorityTests(OperationsFixture f)
{
    private const string M = OperationsFixture.ModelName;

    [Fact]
    public async Task WithOneSlotTheMoreUrgentOfTwoWaitingRequestsFinishesFirst()
    {
        // a long stream holds the one slot
        var longBody = OperationsFixture.Long(M, maxTokens: 60);
        longBody["stream"] = true;
        using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(longBody) };
        using var stream = await f.Http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await stream.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: ", await reader.ReadLineAsync());

        var finished = new List<string>();
        Task<int> Send(string name, int priority) => Task.Run(async () =>
        {
            var body = new JsonObject { ["model"] = M, ["prompt"] = "The little dog", ["max_tokens"] = 8, ["temperature"] = 0, ["priority"] = priority };
            var (status, answer) = await OperationsFixture.PostAsync(f.Http, "/v1/completions", body);
            Assert.True(status == 200, answer.ToJsonString());
            lock (finished) finished.Add(name);
            return status;
        });
        Task<int> low, high;
        using (f.Priority.Engine.PauseForTests())
        {
            // the low-priority request arrives first; both wait while the scheduler is held
            low = Send("low", 10);
            await WaitForQueuedAsync(1);
            high = Send("high", -10);
            await WaitForQueuedAsync(2);
        }
        await Task.WhenAll(low, high);
        await reader.ReadToEndAsync();
        Assert.Equal(["high", "low"], finished); // one slot: the second is admitted only after the first finished
    }

    [Fact]
    public async Task FirstComeFirstServedRefusesAPriorityOtherThanZero()
    {
        var messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" });
        var requests = new (string Path, JsonObject Body)[]
        {
            ("/v1/completions", new JsonObject { ["model"] = M, ["prompt"] = "Once", ["max_tokens"] = 2 }),
            ("/v1/chat/completions", new JsonObject { ["model"] = M, ["messages"] = messages.DeepClone(), ["max_tokens"] = 2 }),
            ("/v1/decisions", new JsonObject
            {
                ["model"] = M, ["input"] = "Cash is an asset.",
                ["questions"] = new JsonArray(new JsonObject { ["type"] = "predicate", ["instructions"] = "Is the statement true?" }),
            }),
        };
        foreach (var (path, body) in requests)
        {
            body["priority"] = 3;
            var (status, answer) = await OperationsFixture.PostAsync(f.FcfsHttp, path, body);
            Assert.True(status == 400, $"{path}: {answer.ToJsonString()}");
            Assert.Equal("priority", answer["error"]!["param"]!.GetValue<string>());
            Assert.Contains("--scheduling-policy priority", answer["error"]!["message"]!.GetValue<string>());

            body["priority"] = 0; // vLLM's default is accepted
            (status, answer) = await OperationsFixture.PostAsync(f.FcfsHttp, path, body);
            Assert.True(status == 200, $"{path}: {answer.ToJsonString()}");
        }
        // the priority server takes any int, and refuses what is not one
        var (ok, _) = await OperationsFixture.PostAsync(f.Http, "/v1/completions", new JsonObject { ["model"] = M, ["prompt"] = "Once", ["max_tokens"] = 2, ["priority"] = -5 });
        Assert.Equal(200, ok);
        var (bad, error) = await OperationsFixture.PostAsync(f.Http, "/v1/completions", new JsonObject { ["model"] = M, ["prompt"] = "Once", ["priority"] = "high" });
        Assert.Equal(400, bad);
        Assert.Equal("priority", error["error"]!["param"]!.GetValue<string>());
    }

    [Fact]
    public void TheEngineRefusesAPriorityUnderFirstComeFirstServed()
    {
        var error = Assert.Throws<ServingException>(() => f.Fcfs.Engine.Submit(new EngineRequest([1, 5], null, new SamplingParams()) { Priority = 1 }));
        Assert.Equal(ServingErrorKind.InvalidRequest, error.Kind);
        Assert.Equal("priority", error.Param);
    }

    private async Task WaitForQueuedAsync(int count)
    {
        for (int i = 0; f.Priority.Engine.Queued < count; i++)
        {
            Assert.True(i < 3000, $"{count} requests never waited ({f.Priority.Engine.Queued} did)");
            await Task.Delay(10);
        }
    }
}
