using System.ClientModel;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;

namespace FinQLoRA.Tests.Serving.Audit;

/// <summary>The audit log of a running server: one parseable line per /v1 request (completions, a stream, chat through
/// the official OpenAI client, decisions, refusals) with the counts the answer itself reports, the adapter's sha256 as
/// System.Security.Cryptography computes it from the file, and the id the <c>x-request-id</c> header carries.</summary>
public sealed class AuditServerTests(AuditFixture f) : IClassFixture<AuditFixture>
{
    private static readonly string[] ContentFields = ["prompt", "completion"];

    private string AdapterSha256() => Sha256Of(f.AdapterDir);

    private static string Sha256Of(string adapterDir)
    {
        using var stream = File.OpenRead(Path.Combine(adapterDir, "adapter_model.safetensors"));
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private async Task<(HttpResponseMessage Response, string Body)> PostAsync(string path, JsonObject body, HttpClient? http = null,
        string? requestId = null)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        if (requestId is not null) message.Headers.Add("x-request-id", requestId);
        var response = await (http ?? f.Http).SendAsync(message);
        return (response, await response.Content.ReadAsStringAsync());
    }

    private static string RequestId(HttpResponseMessage response) => Assert.Single(response.Headers.GetValues("x-request-id"));

    [Fact]
    public async Task ACompletionOnAnAdapterIsAuditedWithItsHashAndCounts()
    {
        var (response, body) = await PostAsync("/v1/completions",
            new JsonObject { ["model"] = "a", ["prompt"] = "The bank", ["max_tokens"] = 6, ["temperature"] = 0 });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        string id = RequestId(response);
        Assert.Matches("^[0-9a-f]{32}$", id);
        var answer = JsonNode.Parse(body)!;
        Assert.Equal("cmpl-" + id, answer["id"]!.GetValue<string>());

        var line = await AuditLines.OfAsync(f.AuditFile, id);
        Assert.Equal("/v1/completions", line.GetProperty("endpoint").GetString());
        Assert.Equal("a", line.GetProperty("model").GetString());
        Assert.Equal("a", line.GetProperty("adapter").GetString());
        Assert.Equal(AdapterSha256(), line.GetProperty("adapter_sha256").GetString());
        Assert.Equal("default", line.GetProperty("key_id").GetString());
        Assert.Equal(200, line.GetProperty("status").GetInt32());
        Assert.Equal(JsonValueKind.Null, line.GetProperty("error").ValueKind);
        Assert.Equal(answer["usage"]!["prompt_tokens"]!.GetValue<int>(), line.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(answer["usage"]!["completion_tokens"]!.GetValue<int>(), line.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(answer["choices"]![0]!["finish_reason"]!.GetValue<string>(), line.GetProperty("finish_reason").GetString());
        Assert.True(line.GetProperty("latency_ms").GetDouble() > 0);
        string time = line.GetProperty("time").GetString()!;
        Assert.EndsWith("Z", time); // RFC 3339 in UTC
        var when = DateTimeOffset.Parse(time, CultureInfo.InvariantCulture);
        Assert.InRange(DateTimeOffset.UtcNow - when, TimeSpan.Zero, TimeSpan.FromHours(1));
        foreach (string field in ContentFields) Assert.False(line.TryGetProperty(field, out _), $"'{field}' without --audit-content");
    }

    [Fact]
    public async Task AStreamIsAuditedAfterItsLastChunkWithTheUsageItReported()
    {
        var (response, body) = await PostAsync("/v1/completions", new JsonObject
        {
            ["model"] = AuditFixture.ModelName, ["prompt"] = "Rates rose", ["max_tokens"] = 9, ["temperature"] = 0, ["n"] = 2,
            ["stream"] = true, ["stream_options"] = new JsonObject { ["include_usage"] = true },
        });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var chunks = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(c => c["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", chunks[^1]);
        var usage = JsonNode.Parse(chunks[^2])!["usage"]!;
        var finishes = chunks[..^2].Select(c => JsonNode.Parse(c)!["choices"]![0]!).Where(c => c["finish_reason"] is not null)
            .OrderBy(c => c["index"]!.GetValue<int>()).Select(c => c["finish_reason"]!.GetValue<string>()).ToList();
        Assert.Equal(2, finishes.Count);

        var line = await AuditLines.OfAsync(f.AuditFile, RequestId(response));
        Assert.Equal(AuditFixture.ModelName, line.GetProperty("model").GetString());
        Assert.Equal(JsonValueKind.Null, line.GetProperty("adapter").ValueKind);
        Assert.Equal(JsonValueKind.Null, line.GetProperty("adapter_sha256").ValueKind);
        Assert.Equal(usage["prompt_tokens"]!.GetValue<int>(), line.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(usage["completion_tokens"]!.GetValue<int>(), line.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(string.Join(',', finishes), line.GetProperty("finish_reason").GetString()); // choices in order
        Assert.Equal(200, line.GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task AChatThroughTheOpenAiClientIsAuditedUnderTheIdItsResponseCarries()
    {
        var client = new ChatClient("a", new ApiKeyCredential(AuditFixture.Key), new OpenAIClientOptions { Endpoint = new Uri(f.Url, "v1") });
        ClientResult<ChatCompletion> result = await client.CompleteChatAsync([new UserChatMessage("What is a bond?")],
            new ChatCompletionOptions { MaxOutputTokenCount = 7, Temperature = 0 });
        ChatCompletion completion = result.Value;
        Assert.True(result.GetRawResponse().Headers.TryGetValue("x-request-id", out string? id));
        Assert.Equal("chatcmpl-" + id, completion.Id);

        var line = await AuditLines.OfAsync(f.AuditFile, id!);
        Assert.Equal("/v1/chat/completions", line.GetProperty("endpoint").GetString());
        Assert.Equal(AdapterSha256(), line.GetProperty("adapter_sha256").GetString());
        Assert.Equal(completion.Usage.InputTokenCount, line.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(completion.Usage.OutputTokenCount, line.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(completion.FinishReason == ChatFinishReason.Length ? "length" : "stop", line.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task ADecisionIsAuditedWithItsInputTokens()
    {
        var (response, body) = await PostAsync("/v1/decisions", new JsonObject
        {
            ["model"] = "a", ["input"] = "The issuer missed a coupon.",
            ["questions"] = new JsonArray(new JsonObject { ["type"] = "predicate", ["instructions"] = "Is this a default?" }),
        });
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var line = await AuditLines.OfAsync(f.AuditFile, RequestId(response));
        Assert.Equal("/v1/decisions", line.GetProperty("endpoint").GetString());
        Assert.Equal(AdapterSha256(), line.GetProperty("adapter_sha256").GetString());
        Assert.Equal(JsonNode.Parse(body)!["usage"]!["input_tokens"]!.GetValue<int>(), line.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(0, line.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(JsonValueKind.Null, line.GetProperty("finish_reason").ValueKind);
    }

    [Fact]
    public async Task RefusalsAreAuditedWithWhatWasKnown()
    {
        // an unknown model: the name asked for is not a served name, so it is not recorded as one
        var (unknown, _) = await PostAsync("/v1/completions", new JsonObject { ["model"] = "nope", ["prompt"] = "x" });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        var line = await AuditLines.OfAsync(f.AuditFile, RequestId(unknown));
        Assert.Equal(404, line.GetProperty("status").GetInt32());
        Assert.Equal("model_not_found", line.GetProperty("error").GetString());
        Assert.Equal(JsonValueKind.Null, line.GetProperty("model").ValueKind);
        Assert.Equal(JsonValueKind.Null, line.GetProperty("prompt_tokens").ValueKind);

        // a bad field after the model resolved: the model is known
        var (bad, _) = await PostAsync("/v1/completions", new JsonObject { ["model"] = "a", ["prompt"] = "x", ["max_tokens"] = -1 });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        line = await AuditLines.OfAsync(f.AuditFile, RequestId(bad));
        Assert.Equal(400, line.GetProperty("status").GetInt32());
        Assert.Equal("a", line.GetProperty("adapter").GetString());
        Assert.Equal("invalid_request_error", line.GetProperty("error").GetString());

        // a wrong key: no key id (the key is never written anywhere)
        using var stranger = new HttpClient { BaseAddress = f.Url };
        stranger.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "sk-wrong");
        var (refused, _) = await PostAsync("/v1/completions", new JsonObject { ["model"] = "a", ["prompt"] = "x" }, stranger);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        line = await AuditLines.OfAsync(f.AuditFile, RequestId(refused));
        Assert.Equal(JsonValueKind.Null, line.GetProperty("key_id").ValueKind);
        Assert.Equal("invalid_api_key", line.GetProperty("error").GetString());
        Assert.DoesNotContain("sk-wrong", AuditLines.ReadText(f.AuditFile));

        // no such route
        using var route = await f.Http.GetAsync("/v1/no-such-route");
        Assert.Equal(HttpStatusCode.NotFound, route.StatusCode);
        line = await AuditLines.OfAsync(f.AuditFile, RequestId(route));
        Assert.Equal("/v1/no-such-route", line.GetProperty("endpoint").GetString());
    }

    [Fact]
    public async Task AClientsSafeRequestIdIsKeptAndAnyOtherReplaced()
    {
        var body = new JsonObject { ["model"] = AuditFixture.ModelName, ["prompt"] = "x", ["max_tokens"] = 2 };
        var (kept, text) = await PostAsync("/v1/completions", body, requestId: "trace-42.a:b_c");
        Assert.Equal("trace-42.a:b_c", RequestId(kept));
        Assert.Equal("cmpl-trace-42.a:b_c", JsonNode.Parse(text)!["id"]!.GetValue<string>());
        await AuditLines.OfAsync(f.AuditFile, "trace-42.a:b_c");

        foreach (string unsafeId in new[] { "has space", new string('x', 65), "quote\"d", "" })
        {
            var (replaced, _) = await PostAsync("/v1/completions", (JsonObject)body.DeepClone(), requestId: unsafeId);
            Assert.Matches("^[0-9a-f]{32}$", RequestId(replaced));
        }
        // every route carries one, not only /v1 (those are not audited)
        using var health = await f.Http.GetAsync("/health");
        Assert.Matches("^[0-9a-f]{32}$", RequestId(health));
    }

    [Fact]
    public async Task AnAdapterLoadedAtRuntimeIsAuditedWithItsOwnHashUntilUnloaded()
    {
        var (load, text) = await PostAsync("/v1/load_lora_adapter", new JsonObject { ["lora_name"] = "c", ["lora_path"] = "later/c" });
        Assert.True(load.StatusCode == HttpStatusCode.OK, text);
        var (served, _) = await PostAsync("/v1/completions", new JsonObject { ["model"] = "c", ["prompt"] = "Bonds", ["max_tokens"] = 3 });
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        var line = await AuditLines.OfAsync(f.AuditFile, RequestId(served));
        string sha256 = Sha256Of(Path.Combine(f.AdapterRoot, "later", "c"));
        Assert.NotEqual(AdapterSha256(), sha256); // another adapter, another hash
        Assert.Equal(sha256, line.GetProperty("adapter_sha256").GetString());

        var (unload, _) = await PostAsync("/v1/unload_lora_adapter", new JsonObject { ["lora_name"] = "c" });
        Assert.Equal(HttpStatusCode.OK, unload.StatusCode);
        var (gone, _) = await PostAsync("/v1/completions", new JsonObject { ["model"] = "c", ["prompt"] = "Bonds", ["max_tokens"] = 3 });
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        line = await AuditLines.OfAsync(f.AuditFile, RequestId(gone));
        Assert.Equal(JsonValueKind.Null, line.GetProperty("adapter_sha256").ValueKind);
        Assert.Equal("/v1/unload_lora_adapter", (await AuditLines.OfAsync(f.AuditFile, RequestId(unload))).GetProperty("endpoint").GetString());
    }
}
