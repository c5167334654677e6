using System.ClientModel;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using FinQLoRA.Server.Common;
using OpenAI;
using OpenAI.Chat;

namespace FinQLoRA.Tests.Serving;

/// <summary>Prompt caching through HTTP on the keyed chat server (its default 1 GiB pool): the official OpenAI .NET
/// client sees <c>cached_tokens</c> on a repeated request with the same answer, plain and streamed; a
/// <c>prompt_cache_key</c> (typed HTTP: the client has no such field) is a partition of its own; completions report
/// it too; partitions of different API keys differ.</summary>
public sealed class ServerPrefixCacheTests(ChatServeFixture f) : IClassFixture<ChatServeFixture>
{
    private const int Block = 16; // EngineOptions' default block

    private ChatClient OpenAiChat() =>
        new(ChatServeFixture.ModelName, new ApiKeyCredential(ChatServeFixture.Key), new OpenAIClientOptions { Endpoint = new Uri(f.Url, "v1") });

    private static readonly ChatCompletionOptions Greedy = new() { Temperature = 0, MaxOutputTokenCount = ChatServeFixture.MaxTokens };

    [Fact]
    public async Task ASecondIdenticalChatRequestReadsItsPromptFromTheCacheAndAnswersTheSame()
    {
        Assert.True(f.Engine.PrefixCacheBytes > 0, "the server's default turns prefix caching on");
        var client = OpenAiChat();
        ChatMessage[] messages = [new SystemChatMessage("You answer questions about finance for a bank's customers."), new UserChatMessage("What is a bond coupon?")];
        ChatCompletion first = await client.CompleteChatAsync(messages, Greedy), second = await client.CompleteChatAsync(messages, Greedy);
        int prompt = first.Usage.InputTokenCount;
        Assert.True(prompt > 2 * Block, $"the prompt ({prompt} tokens) must span blocks");
        Assert.Equal(0, first.Usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal((prompt - 1) / Block * Block, second.Usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(first.Content[0].Text, second.Content[0].Text);
        Assert.Equal(first.Usage.OutputTokenCount, second.Usage.OutputTokenCount);

        // streamed: the usage chunk carries it too (the client asks for usage on streams)
        var streamed = new StringBuilder();
        ChatTokenUsage? usage = null;
        await foreach (var update in client.CompleteChatStreamingAsync(messages, Greedy))
        {
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
            usage ??= update.Usage;
        }
        Assert.Equal(first.Content[0].Text, streamed.ToString());
        Assert.NotNull(usage);
        Assert.Equal((prompt - 1) / Block * Block, usage.InputTokenDetails.CachedTokenCount);

        // vLLM's prefix_cache_queries / prefix_cache_hits, in tokens
        using var http = new HttpClient { BaseAddress = f.Url };
        var metrics = (await http.GetStringAsync("/metrics")).Split('\n');
        double Counter(string name) => double.Parse(metrics.Single(l => l.StartsWith(name + " ", StringComparison.Ordinal)).Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        double queries = Counter("finqlora_prefix_cache_queries_total"), hits = Counter("finqlora_prefix_cache_hits_total");
        Assert.True(hits >= 2 * ((prompt - 1) / Block * Block), $"hits {hits}");
        Assert.True(queries >= hits + 3 * prompt - 2 * ((prompt - 1) / Block * Block), $"queries {queries}, hits {hits}");
    }

    [Fact]
    public async Task APromptCacheKeyIsAPartitionOfItsOwnOnChatAndCompletions()
    {
        using var http = new HttpClient { BaseAddress = f.Url };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ChatServeFixture.Key);
        async Task<(int Cached, string Text)> Post(string path, string? cacheKey)
        {
            var body = new JsonObject { ["model"] = ChatServeFixture.ModelName, ["temperature"] = 0, ["max_tokens"] = 4 };
            if (path.Contains("chat")) body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Explain what a yield curve inversion signals to investors." });
            else body["prompt"] = "A yield curve inversion happens when short-term rates rise above long-term rates, and it";
            if (cacheKey is not null) body["prompt_cache_key"] = cacheKey;
            using var response = await http.PostAsJsonAsync(path, body);
            var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.True(response.IsSuccessStatusCode, json.ToJsonString());
            var choice = json["choices"]![0]!;
            return (json["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>(),
                choice["message"]?["content"]?.GetValue<string>() ?? choice["text"]!.GetValue<string>());
        }

        foreach (string path in new[] { "/v1/chat/completions", "/v1/completions" })
        {
            var shared = await Post(path, null);
            Assert.Equal(0, shared.Cached);
            var sharedAgain = await Post(path, null);
            Assert.True(sharedAgain.Cached > 0, path);
            var tenant = await Post(path, "tenant-a");
            Assert.Equal(0, tenant.Cached);                 // the shared partition's blocks are not this key's
            Assert.Equal(shared.Text, tenant.Text);
            var tenantAgain = await Post(path, "tenant-a");
            Assert.Equal(sharedAgain.Cached, tenantAgain.Cached);
            Assert.Equal(0, (await Post(path, "tenant-b")).Cached);
        }
    }

    [Fact]
    public void EachApiKeyIsAPartitionAndTheKeyItselfIsNotKept()
    {
        // without keys: prompt_cache_key alone; with keys: the authenticated key's id (never the key) and then it
        Assert.Null(CachePartition.Of(null, null));
        Assert.Equal("p", CachePartition.Of(null, "p"));
        string? one = CachePartition.Of("desk-a", null), two = CachePartition.Of("desk-b", null);
        Assert.NotNull(one);
        Assert.NotEqual(one, two);
        Assert.NotEqual(CachePartition.Of("desk-a", "p"), CachePartition.Of("desk-b", "p"));
        Assert.NotEqual(one, CachePartition.Of("desk-a", "p"));
        Assert.NotEqual("p", CachePartition.Of("desk-a", "p")); // a keyed request never shares the unkeyed partition of its cache key
    }
}
