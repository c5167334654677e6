using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Server.Tenancy;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Models;
using static FinQLoRA.Tests.Serving.Tenancy.TenantServeFixture;

namespace FinQLoRA.Tests.Serving.Tenancy;

/// <summary>
/// Keys and tenants through the server: a key sees and uses only its models (the official OpenAI .NET client for
/// models and chat, typed HTTP for completions, decisions and the adapter calls), another tenant's adapter is the 404
/// of a model that does not exist, byte for byte; wrong keys are 401; limits are 429 with retry-after; each key has its
/// own prompt-cache partition.
/// </summary>
public sealed class TenantServerTests(TenantServeFixture f) : IClassFixture<TenantServeFixture>
{
    private OpenAIClientOptions Options => new() { Endpoint = new Uri(f.Url, "v1") };
    private OpenAIModelClient Models(string keyId) => new(new ApiKeyCredential(f.Keys[keyId]), Options);
    private ChatClient Chat(string keyId, string model) => new(model, new ApiKeyCredential(f.Keys[keyId]), Options);

    [Fact]
    public void EachKeyListsOnlyTheModelsItMayUse()
    {
        Assert.Equal(["desk-a-1", "desk-a-2"], Models(DeskA).GetModels().Value.Select(m => m.Id).Order(StringComparer.Ordinal));
        Assert.Equal([BaseName, "desk-b-1"], Models(DeskB).GetModels().Value.Select(m => m.Id)); // the base first, as without keys
        Assert.Equal(["desk-a-1", "desk-a-2", "desk-b-1", BaseName], Models(Auditor).GetModels().Value.Select(m => m.Id).Order(StringComparer.Ordinal));
        Assert.Equal("desk-b-1", Models(DeskB).GetModel("desk-b-1").Value.Id);
        var hidden = Assert.Throws<ClientResultException>(() => Models(DeskA).GetModel("desk-b-1"));
        Assert.Equal(404, hidden.Status);
        Assert.Equal(404, Assert.Throws<ClientResultException>(() => Models(DeskA).GetModel(BaseName)).Status); // the base only if listed
    }

    [Fact]
    public async Task AnotherTenantsModelIsAnswered404ExactlyAsAModelThatDoesNotExist()
    {
        using var deskA = f.Http(DeskA);
        using var deskB = f.Http(DeskB);
        (string Path, Func<string, JsonObject> Body)[] endpoints =
        [
            ("/v1/completions", m => new JsonObject { ["model"] = m, ["prompt"] = "Hello", ["max_tokens"] = 2 }),
            ("/v1/chat/completions", m => new JsonObject { ["model"] = m, ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }), ["max_tokens"] = 2 }),
            ("/v1/decisions", m => new JsonObject { ["model"] = m, ["input"] = "Rates rose.", ["questions"] = new JsonArray(new JsonObject { ["type"] = "predicate", ["name"] = "up", ["instructions"] = "Did rates rise?" }) }),
        ];
        foreach (var (path, body) in endpoints)
        {
            // desk-b-1 exists but is desk B's; desk-b-9 does not exist, and desk B may use the name: the registry refuses it
            var (forbiddenStatus, forbidden, forbiddenHeaders) = await Post(deskA, path, body("desk-b-1"));
            var (unknownStatus, unknown, unknownHeaders) = await Post(deskB, path, body("desk-b-9"));
            Assert.Equal(404, forbiddenStatus);
            Assert.Equal(unknownStatus, forbiddenStatus);
            Assert.Equal(unknown.Replace("desk-b-9", "desk-b-1"), forbidden);
            Assert.Equal(unknownHeaders, forbiddenHeaders);
            Assert.Contains("model_not_found", forbidden);
            // the very same name that desk A may not use answers desk B
            Assert.NotEqual(404, (await Post(deskB, path, body("desk-b-1"))).Status);
        }
        // through the official client: the same 404 for chat
        Assert.Equal(404, Assert.Throws<ClientResultException>(() => Chat(DeskA, "desk-b-1").CompleteChat([new UserChatMessage("Hi")])).Status);
        // and /v1/models/{id}
        var hidden = await deskA.GetAsync("/v1/models/desk-b-1");
        var absent = await deskA.GetAsync("/v1/models/desk-b-9");
        Assert.Equal(HttpStatusCode.NotFound, hidden.StatusCode);
        Assert.Equal((await absent.Content.ReadAsStringAsync()).Replace("desk-b-9", "desk-b-1"), await hidden.Content.ReadAsStringAsync());
    }

    [Fact]
    public void AKeyUsesWhatItMayThroughTheOpenAiClient()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 4 };
        var fromAdapter = Chat(DeskA, "desk-a-1").CompleteChat([new UserChatMessage("What is a bond?")], options).Value;
        Assert.Equal("desk-a-1", fromAdapter.Model);
        var fromBase = Chat(DeskB, BaseName).CompleteChat([new UserChatMessage("What is a bond?")], options).Value;
        Assert.Equal(BaseName, fromBase.Model);
    }

    [Fact]
    public async Task AWrongMissingOrMalformedKeyIs401()
    {
        var wrong = Assert.Throws<ClientResultException>(() => new OpenAIModelClient(new ApiKeyCredential("fq-not-a-key"), Options).GetModels());
        Assert.Equal(401, wrong.Status);
        // a stored hash is not a key
        string hashOfDeskA = ApiKeyHash.Hex(ApiKeyHash.Of(f.Keys[DeskA]));
        foreach (var http in new[] { f.Http(null), f.Http(null, rawKey: hashOfDeskA), f.Http(null, rawKey: f.Keys[DeskA] + "x") })
            using (http)
            {
                var response = await http.GetAsync("/v1/models");
                Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
                Assert.Contains("invalid_api_key", await response.Content.ReadAsStringAsync());
            }
        // /health stays outside the keys
        using var none = f.Http(null);
        Assert.Equal(HttpStatusCode.OK, (await none.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task RequestsPerMinuteOverTheLimitAre429WithRetryAfter()
    {
        using var slow = f.Http(Slow);
        // two requests per minute: the bucket holds two; a third within the same 30 s refill step is refused (the
        // bucket's timer may add one token between, so the refusal comes at the third or the fourth)
        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? refused = null;
        for (int i = 0; i < 6 && refused is null; i++)
        {
            var response = await slow.GetAsync("/v1/models");
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests) refused = response;
        }
        Assert.NotNull(refused);
        Assert.InRange(statuses.Count, 3, 4);
        Assert.All(statuses[..^1], s => Assert.Equal(HttpStatusCode.OK, s));
        AssertRateLimited(refused, await refused.Content.ReadAsStringAsync(), maxSeconds: 30);
        // another key is not affected
        using var audit = f.Http(Auditor);
        Assert.Equal(HttpStatusCode.OK, (await audit.GetAsync("/v1/models")).StatusCode);
    }

    [Fact]
    public async Task TokensPerMinuteAreChargedAtAdmissionAsPromptPlusMaxTokens()
    {
        using var frugal = f.Http(Frugal);
        // over the whole minute's 100 tokens by itself: refused, nothing taken
        var (tooBig, tooBigBody, tooBigResponse) = await PostFull(frugal, "/v1/completions", new JsonObject { ["model"] = BaseName, ["prompt"] = "Hello there", ["max_tokens"] = 120 });
        Assert.Equal(429, tooBig);
        Assert.Contains("more than API key 'frugal''s limit of 100 tokens per minute", tooBigBody);
        AssertRateLimited(tooBigResponse, tooBigBody, maxSeconds: 60);
        // 70 tokens fit; the next 70 do not (30 left, 1 more every 0.6 s)
        int prompt = f.Tokenizer.Encode("Hello there", addBos: true).Length;
        var request = new JsonObject { ["model"] = "desk-b-1", ["prompt"] = "Hello there", ["max_tokens"] = 70 - prompt, ["temperature"] = 0 };
        Assert.Equal(200, (await PostFull(frugal, "/v1/completions", request)).Status);
        var (second, secondBody, secondResponse) = await PostFull(frugal, "/v1/completions", request.DeepClone());
        Assert.Equal(429, second);
        Assert.Contains("needs an estimated 70", secondBody);
        AssertRateLimited(secondResponse, secondBody, maxSeconds: 60);
    }

    [Fact]
    public async Task AdapterManagementNeedsTheRightAndStaysWithinTheKeysModels()
    {
        using var deskA = f.Http(DeskA);
        using var deskB = f.Http(DeskB);
        var load = new JsonObject { ["lora_name"] = "desk-a-3", ["lora_path"] = "later/desk-a-3" };
        var (status, body, _) = await PostFull(deskB, "/v1/load_lora_adapter", load);
        Assert.Equal(403, status);
        Assert.Contains("permission_denied", body);
        Assert.Equal(403, (await PostFull(deskB, "/v1/unload_lora_adapter", new JsonObject { ["lora_name"] = "desk-b-1" })).Status);
        // desk A may manage, under its own names only
        var (outside, outsideBody, _) = await PostFull(deskA, "/v1/load_lora_adapter", new JsonObject { ["lora_name"] = "desk-b-3", ["lora_path"] = "later/desk-a-3" });
        Assert.Equal(403, outside);
        Assert.Contains("lora_name", outsideBody);
        Assert.Equal(200, (await PostFull(deskA, "/v1/load_lora_adapter", load)).Status);
        try
        {
            Assert.Contains("desk-a-3", Models(DeskA).GetModels().Value.Select(m => m.Id));
            Assert.DoesNotContain("desk-a-3", Models(DeskB).GetModels().Value.Select(m => m.Id));
            // unloading another desk's adapter is the 404 of an unknown one
            var (hidden, hiddenBody, _) = await PostFull(deskA, "/v1/unload_lora_adapter", new JsonObject { ["lora_name"] = "desk-b-1" });
            var (absent, absentBody, _) = await PostFull(deskA, "/v1/unload_lora_adapter", new JsonObject { ["lora_name"] = "desk-a-9" });
            Assert.Equal(404, hidden);
            Assert.Equal(absent, hidden);
            Assert.Equal(absentBody.Replace("desk-a-9", "desk-b-1"), hiddenBody);
            Assert.Contains("desk-b-1", Models(DeskB).GetModels().Value.Select(m => m.Id));
        }
        finally
        {
            Assert.Equal(200, (await PostFull(deskA, "/v1/unload_lora_adapter", new JsonObject { ["lora_name"] = "desk-a-3" })).Status);
        }
    }

    [Fact]
    public async Task KeysNeverShareCachedPromptBlocks()
    {
        using var audit = f.Http(Auditor);
        using var deskB = f.Http(DeskB);
        // a prompt of several 16-token blocks, the same model for both keys
        string prompt = string.Join(' ', Enumerable.Repeat("The bank raised its rates again this quarter.", 8));
        async Task<int> Cached(HttpClient http)
        {
            var (status, body, _) = await PostFull(http, "/v1/completions", new JsonObject { ["model"] = BaseName, ["prompt"] = prompt, ["max_tokens"] = 1 });
            Assert.True(status == 200, body);
            return JsonNode.Parse(body)!["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>();
        }
        Assert.Equal(0, await Cached(audit));
        Assert.True(await Cached(audit) >= 16);   // the key's own blocks are found
        Assert.Equal(0, await Cached(deskB));     // another key's are not
        Assert.True(await Cached(deskB) >= 16);
    }

    private static void AssertRateLimited(HttpResponseMessage response, string body, int maxSeconds)
    {
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        var retry = response.Headers.GetValues("retry-after").Single();
        Assert.Matches("^[1-9][0-9]*$", retry); // whole seconds, at least 1
        Assert.InRange(int.Parse(retry, System.Globalization.CultureInfo.InvariantCulture), 1, maxSeconds);
        var error = JsonNode.Parse(body)!["error"]!;
        Assert.Equal("rate_limit_exceeded", error["code"]!.GetValue<string>());
        Assert.Equal("rate_limit_error", error["type"]!.GetValue<string>());
    }

    private static async Task<(int Status, string Body, string Headers)> Post(HttpClient http, string path, JsonObject body)
    {
        var (status, text, response) = await PostFull(http, path, body);
        // what a client could tell the two answers apart by, but for the date and the request's own id (new on every request)
        string headers = string.Join("\n", response.Headers.Concat(response.Content.Headers).Where(h => h.Key is not ("Date" or "X-Request-ID")).Select(h => $"{h.Key}: {string.Join(",", h.Value)}").Order());
        return (status, text, headers);
    }

    private static async Task<(int Status, string Body, HttpResponseMessage Response)> PostFull(HttpClient http, string path, JsonNode body)
    {
        var response = await http.PostAsJsonAsync(path, body);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(), response);
    }
}
