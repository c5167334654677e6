using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using FinQLoRA.Tests.Support;
using OpenAI;
using OpenAI.Models;

namespace FinQLoRA.Tests.Serving;

/// <summary><c>finqlora serve</c> over stories260K and adapters trained… made in the test, driven over loopback HTTP.</summary>
public sealed class ServerCompletionsTests(ServeFixture f) : IClassFixture<ServeFixture>
{
    private static OpenAIClientOptions Options(Uri url) => new() { Endpoint = new Uri(url, "v1") };

    [Fact]
    public async Task ModelsAreListedThroughTheOpenAiClientWithAdaptersUnderTheBase()
    {
        var client = new OpenAIModelClient(new ApiKeyCredential("not-needed"), Options(f.Url));
        var ids = client.GetModels().Value.Select(m => m.Id).ToList();
        Assert.Equal(ServeFixture.BaseName, ids[0]);
        Assert.Contains("a", ids);
        Assert.Contains("b", ids);
        Assert.Equal("a", client.GetModel("a").Value.Id);

        var list = await f.Http.GetStringAsync("/v1/models");
        var a = JsonNode.Parse(list)!["data"]!.AsArray().Single(m => m!["id"]!.GetValue<string>() == "a")!;
        Assert.Equal("model", a["object"]!.GetValue<string>());
        Assert.Equal(ServeFixture.BaseName, a["parent"]!.GetValue<string>());
        Assert.Equal(ServeFixture.BaseName, a["root"]!.GetValue<string>());
        Assert.True(a["created"]!.GetValue<long>() > 0);
    }

    [Fact]
    public async Task GreedyCompletionsEqualGenerateForTheBaseAndEachAdapterWithExactUsage()
    {
        foreach (string model in ServeFixture.Models)
            for (int p = 0; p < ServeFixture.Prompts.Length; p++)
            {
                var (status, body) = await f.PostAsync("/v1/completions", ServeFixture.Greedy(model, p));
                Assert.Equal(200, status);
                var expected = f.Reference[(model, p)];
                var choice = body["choices"]![0]!;
                Assert.Equal(expected.Text, choice["text"]!.GetValue<string>());
                Assert.Equal(expected.Finish, choice["finish_reason"]!.GetValue<string>());
                Assert.Equal("text_completion", body["object"]!.GetValue<string>());
                Assert.Equal(model, body["model"]!.GetValue<string>());
                // usage == the tokenizer's count of the prompt (what `finqlora tokenize --add-bos` prints) and the tokens generated
                Assert.Equal(f.Tokenizer.Encode(ServeFixture.Prompts[p], addBos: true).Length, body["usage"]!["prompt_tokens"]!.GetValue<int>());
                Assert.Equal(expected.Tokens, body["usage"]!["completion_tokens"]!.GetValue<int>());
                Assert.Equal(body["usage"]!["prompt_tokens"]!.GetValue<int>() + expected.Tokens, body["usage"]!["total_tokens"]!.GetValue<int>());
            }
        // ... and == what `finqlora tokenize` prints for it
        var (code, printed) = CliProcess.Run(TimeSpan.FromMinutes(1), "tokenize", "--tokenizer", SeededLlama.Folder, "--text", ServeFixture.Prompts[2], "--add-bos", "--json");
        Assert.Equal(0, code);
        var (_, third) = await f.PostAsync("/v1/completions", ServeFixture.Greedy(ServeFixture.BaseName, 2));
        Assert.Equal(JsonNode.Parse(printed.Trim())!["ids"]!.AsArray().Count, third["usage"]!["prompt_tokens"]!.GetValue<int>());
        // The adapters change the answers, so a wrong adapter would be noticed.
        Assert.Contains(Enumerable.Range(0, ServeFixture.Prompts.Length), p => f.Reference[("a", p)].Text != f.Reference[(ServeFixture.BaseName, p)].Text);
        Assert.Contains(Enumerable.Range(0, ServeFixture.Prompts.Length), p => f.Reference[("b", p)].Text != f.Reference[(ServeFixture.BaseName, p)].Text);
    }

    [Fact]
    public async Task TwentyFourConcurrentRequestsOverThreeModelsEqualGenerate()
    {
        var jobs = Enumerable.Range(0, 24).Select(i => (Model: ServeFixture.Models[i % 3], Prompt: i % ServeFixture.Prompts.Length)).ToList();
        var answers = await Task.WhenAll(jobs.Select(j => f.PostAsync("/v1/completions", ServeFixture.Greedy(j.Model, j.Prompt))));
        for (int i = 0; i < jobs.Count; i++)
        {
            Assert.Equal(200, answers[i].Status);
            Assert.Equal(f.Reference[jobs[i]].Text, answers[i].Body["choices"]![0]!["text"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task StreamedCompletionEqualsTheNonStreamedOneAndEndsWithUsageAndDone()
    {
        var request = ServeFixture.Greedy("b", 2);
        request["stream"] = true;
        request["stream_options"] = new JsonObject { ["include_usage"] = true };
        var (chunks, done) = await ReadSse(request);
        Assert.True(done);
        var text = string.Concat(chunks.Where(c => c["choices"]!.AsArray().Count > 0).Select(c => c["choices"]![0]!["text"]!.GetValue<string>()));
        Assert.Equal(f.Reference[("b", 2)].Text, text);
        Assert.Equal(f.Reference[("b", 2)].Finish, chunks.Where(c => c["choices"]!.AsArray().Count > 0).Last()["choices"]![0]!["finish_reason"]!.GetValue<string>());
        var usage = chunks.Last()["usage"]!;
        Assert.Empty(chunks.Last()["choices"]!.AsArray());
        Assert.Equal(f.Reference[("b", 2)].Tokens, usage["completion_tokens"]!.GetValue<int>());
    }

    internal async Task<(List<JsonNode> Chunks, bool Done)> ReadSse(JsonObject request)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await f.Http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var chunks = new List<JsonNode>();
        bool done = false;
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.Length == 0) continue;
            Assert.StartsWith("data: ", line);
            Assert.False(done, "nothing may follow [DONE]");
            if (line == "data: [DONE]") done = true;
            else chunks.Add(JsonNode.Parse(line["data: ".Length..])!);
        }
        return (chunks, done);
    }

    [Fact]
    public async Task NChoicesStopStringsEchoAndLogprobs()
    {
        // n = 3 sampled choices with a seed: they differ from each other, and the same seed gives the same three.
        var sampled = new JsonObject { ["model"] = "a", ["prompt"] = ServeFixture.Prompts[0], ["max_tokens"] = 12, ["temperature"] = 1.0, ["n"] = 3, ["seed"] = 11 };
        var (s1, first) = await f.PostAsync("/v1/completions", sampled);
        var (_, second) = await f.PostAsync("/v1/completions", sampled.DeepClone());
        Assert.Equal(200, s1);
        var texts = first["choices"]!.AsArray().Select(c => c!["text"]!.GetValue<string>()).ToList();
        Assert.Equal([0, 1, 2], first["choices"]!.AsArray().Select(c => c!["index"]!.GetValue<int>()));
        Assert.Equal(texts, second["choices"]!.AsArray().Select(c => c!["text"]!.GetValue<string>()));
        Assert.True(texts.Distinct().Count() > 1);

        // A stop string taken from the middle of the greedy answer (it spans tokens): the text ends right before it.
        string full = f.Reference[(ServeFixture.BaseName, 0)].Text;
        string stop = full.Substring(10, 4);
        var stopped = ServeFixture.Greedy(ServeFixture.BaseName, 0);
        stopped["stop"] = new JsonArray("zzzz", stop);
        var (_, sb) = await f.PostAsync("/v1/completions", stopped);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], sb["choices"]![0]!["text"]!.GetValue<string>());
        Assert.Equal("stop", sb["choices"]![0]!["finish_reason"]!.GetValue<string>());

        var echo = ServeFixture.Greedy(ServeFixture.BaseName, 1);
        echo["echo"] = true;
        var (_, eb) = await f.PostAsync("/v1/completions", echo);
        Assert.Equal(ServeFixture.Prompts[1] + f.Reference[(ServeFixture.BaseName, 1)].Text, eb["choices"]![0]!["text"]!.GetValue<string>());

        var withLogprobs = ServeFixture.Greedy("b", 3);
        withLogprobs["logprobs"] = 2;
        var (_, lb) = await f.PostAsync("/v1/completions", withLogprobs);
        var lp = lb["choices"]![0]!["logprobs"]!;
        var tokens = lp["tokens"]!.AsArray().Select(t => t!.GetValue<string>()).ToList();
        Assert.Equal(f.Reference[("b", 3)].Text, string.Concat(tokens)); // the tokens' texts make up the text
        Assert.Equal(tokens.Count, lp["token_logprobs"]!.AsArray().Count);
        Assert.All(lp["top_logprobs"]!.AsArray(), t => Assert.InRange(t!.AsObject().Count, 1, 2));
        for (int i = 0; i < tokens.Count; i++)
        {
            float chosen = lp["token_logprobs"]![i]!.GetValue<float>();
            Assert.True(chosen <= 0);
            // greedy: the chosen token is the most likely alternative
            Assert.Equal(lp["top_logprobs"]![i]!.AsObject().Max(kv => kv.Value!.GetValue<float>()), chosen);
        }
        Assert.Equal(0, lp["text_offset"]![0]!.GetValue<int>());

        // A list of prompts: one choice each, in order.
        var (_, multi) = await f.PostAsync("/v1/completions", new JsonObject { ["model"] = "a", ["prompt"] = new JsonArray(ServeFixture.Prompts[4], ServeFixture.Prompts[5]), ["max_tokens"] = ServeFixture.MaxTokens, ["temperature"] = 0 });
        Assert.Equal(f.Reference[("a", 4)].Text, multi["choices"]![0]!["text"]!.GetValue<string>());
        Assert.Equal(f.Reference[("a", 5)].Text, multi["choices"]![1]!["text"]!.GetValue<string>());
    }

    [Fact]
    public async Task EveryBadRequestGetsItsStatusInOpenAisShapeAndTheServerKeepsServing()
    {
        async Task<JsonNode> Expect(int status, string body, string? param = null, string? code = null)
        {
            // Expect: 100-continue, as clients that upload large bodies send it: a body refused by its length is never sent.
            using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            message.Headers.ExpectContinue = true;
            using var response = await f.Http.SendAsync(message);
            string text = await response.Content.ReadAsStringAsync();
            Assert.True(status == (int)response.StatusCode, $"{(int)response.StatusCode}: {text}");
            var error = JsonNode.Parse(text)!["error"]!;
            Assert.NotNull(error["message"]);
            Assert.NotNull(error["type"]);
            Assert.DoesNotContain("   at ", text); // never a stack trace
            if (param is not null) Assert.Equal(param, error["param"]!.GetValue<string>());
            if (code is not null) Assert.Equal(code, error["code"]!.GetValue<string>());
            return error;
        }
        await Expect(400, "{not json", null);
        await Expect(400, "[1, 2]");
        await Expect(400, "{\"prompt\": \"x\"}", "model", "missing_required_parameter");
        await Expect(400, "{\"model\": \"stories\", \"prompt\": \"x\", \"temperature\": 7}", "temperature");
        await Expect(400, "{\"model\": \"stories\", \"prompt\": \"x\", \"max_tokens\": \"many\"}", "max_tokens");
        await Expect(400, "{\"model\": \"stories\", \"prompt\": 5}", "prompt");
        await Expect(400, "{\"model\": \"stories\", \"prompt\": \"x\", \"n\": 1000}", "n");
        await Expect(404, "{\"model\": \"nope\", \"prompt\": \"x\"}", "model", "model_not_found");
        var overflow = await Expect(400, "{\"model\": \"stories\", \"prompt\": [1, 403, 407, 261, 378], \"max_tokens\": 200}", "max_tokens", "context_length_exceeded");
        Assert.Contains("128", overflow["message"]!.GetValue<string>());  // the context
        Assert.Contains("205", overflow["message"]!.GetValue<string>());  // 5 prompt tokens + 200
        await Expect(413, "{\"model\": \"stories\", \"prompt\": \"" + new string('x', 100_000) + "\"}", null, "request_too_large");

        // chat needs a chat format, which stories260K's tokenizer lacks
        using (var chat = await f.Http.PostAsync("/v1/chat/completions", new StringContent("{\"model\": \"stories\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, chat.StatusCode);
            Assert.Contains("chat template", await chat.Content.ReadAsStringAsync());
        }

        // 429: with the scheduler held, requests beyond the free slots and the queue are refused.
        var small = new JsonObject { ["model"] = "stories", ["prompt"] = "x", ["max_tokens"] = 2, ["temperature"] = 0 };
        var engine = f.Engine;
        Task<(int, JsonNode)>[] held;
        using (engine.PauseForTests())
        {
            held = Enumerable.Range(0, engine.Options.MaxBatch + engine.Options.MaxQueue).Select(_ => f.PostAsync("/v1/completions", small.DeepClone())).ToArray();
            while (engine.Queued < held.Length) await Task.Delay(10);
            await Expect(429, small.ToJsonString(), null, "queue_full");
        }
        Assert.All(await Task.WhenAll(held), r => Assert.Equal(200, r.Item1));
        Assert.Equal(200, (await f.PostAsync("/v1/completions", ServeFixture.Greedy("a", 0))).Status);
    }
}
