using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;

namespace FinQLoRA.Tests.Serving;

/// <summary>Chat completions through the official OpenAI client and Microsoft.Extensions.AI's OpenAI client, the API
/// key, and the in-process <see cref="EngineChatClient"/>, on a Llama 3-format model.</summary>
public sealed class ServerChatTests(ChatServeFixture f) : IClassFixture<ChatServeFixture>
{
    private ChatClient OpenAiChat(string key = ChatServeFixture.Key) =>
        new(ChatServeFixture.ModelName, new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(f.Url, "v1") });

    private static readonly ChatCompletionOptions Greedy = new() { Temperature = 0, MaxOutputTokenCount = ChatServeFixture.MaxTokens };

    [Fact]
    public void OpenAiClientChatEqualsGenerateChatPlainAndStreamedWithUsage()
    {
        var client = OpenAiChat();
        for (int i = 0; i < ChatServeFixture.Questions.Length; i++)
        {
            var completion = client.CompleteChat([new UserChatMessage(ChatServeFixture.Questions[i])], Greedy).Value;
            Assert.Equal(f.Reference[i].Text, completion.Content[0].Text);
            Assert.Equal(ChatMessageRole.Assistant, completion.Role);
            Assert.Equal(f.Reference[i].PromptIds.Length, completion.Usage.InputTokenCount);
            Assert.Equal(f.Reference[i].Tokens, completion.Usage.OutputTokenCount);
            Assert.Equal(f.Reference[i].Tokens == ChatServeFixture.MaxTokens ? OpenAI.Chat.ChatFinishReason.Length : OpenAI.Chat.ChatFinishReason.Stop, completion.FinishReason);

            var streamed = new StringBuilder();
            OpenAI.Chat.ChatFinishReason? finish = null;
            foreach (var update in client.CompleteChatStreaming([new UserChatMessage(ChatServeFixture.Questions[i])], Greedy))
            {
                foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
                finish ??= update.FinishReason;
            }
            Assert.Equal(completion.Content[0].Text, streamed.ToString());
            Assert.Equal(completion.FinishReason, finish);
        }
        // The answers differ, so the comparison is not trivially true.
        Assert.NotEqual(f.Reference[0].Text, f.Reference[1].Text);
    }

    [Fact]
    public async Task LogprobsAndNThroughTheOpenAiClient()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6, IncludeLogProbabilities = true, TopLogProbabilityCount = 3 };
        var completion = OpenAiChat().CompleteChat([new SystemChatMessage("Be brief."), new UserChatMessage(ChatServeFixture.Questions[0])], options).Value;
        var tokens = completion.ContentTokenLogProbabilities;
        Assert.Equal(completion.Content[0].Text, string.Concat(tokens.Select(t => t.Token)));
        Assert.All(tokens, t =>
        {
            Assert.Equal(3, t.TopLogProbabilities.Count);
            Assert.Equal(t.TopLogProbabilities[0].LogProbability, t.LogProbability); // greedy picks the most likely
            Assert.Equal(Encoding.UTF8.GetBytes(t.Token), t.Utf8Bytes!.Value.ToArray());
        });

        // n = 2 over raw HTTP (the SDK has no n): both choices, indexed
        using var http = Authorized();
        var body = new JsonObject
        {
            ["model"] = ChatServeFixture.ModelName, ["n"] = 2, ["max_tokens"] = 5, ["temperature"] = 1.0, ["seed"] = 3,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = ChatServeFixture.Questions[1] }) }),
        };
        var response = await http.PostAsync("/v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("chat.completion", json["object"]!.GetValue<string>());
        Assert.Equal([0, 1], json["choices"]!.AsArray().Select(c => c!["index"]!.GetValue<int>()));
        Assert.All(json["choices"]!.AsArray(), c => Assert.Equal("assistant", c!["message"]!["role"]!.GetValue<string>()));
    }

    [Fact]
    public async Task AConversationTheTemplateRaisesOnIsAnInvalidRequest()
    {
        // Gemma 2's template (tests/fixtures/chat) has no system role; the in-process client says so as a bad request,
        // before anything reaches the engine (whose tokenizer is not Gemma's)
        using var dir = new TempFolder();
        var gemma2 = JsonNode.Parse(File.ReadAllText(Path.Combine(Shared.RepoRoot, "tests", "fixtures", "chat", "gemma2.json")))!["tokenizer_config"]!;
        string config = dir.Write(FinQLoRA.Data.Chat.ChatTemplateDetector.ConfigFileName, gemma2.ToJsonString());
        var format = FinQLoRA.Data.Chat.ChatFormat.Detect(FinQLoRA.Tests.Data.Chat.SpecialTokensTokenizer.Numbered(["<bos>", "<start_of_turn>", "<end_of_turn>"]), config)!;
        using IChatClient client = new EngineChatClient(f.Engine, format, ChatServeFixture.ModelName);
        var e = await Assert.ThrowsAsync<ServingException>(() => client.GetResponseAsync([new(ChatRole.System, "Be brief."), new(ChatRole.User, "Hi")]));
        Assert.Equal(ServingErrorKind.InvalidRequest, e.Kind);
        Assert.Contains("no system role", e.Message);
    }

    [Fact]
    public async Task MicrosoftExtensionsAiOpenAiClientAndTheInProcessClientAnswerAlike()
    {
        IChatClient remote = OpenAiChat().AsIChatClient();
        using IChatClient local = new EngineChatClient(f.Engine, f.Format, ChatServeFixture.ModelName);
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = ChatServeFixture.MaxTokens };
        for (int i = 0; i < ChatServeFixture.Questions.Length; i++)
        {
            List<Microsoft.Extensions.AI.ChatMessage> messages = [new(ChatRole.User, ChatServeFixture.Questions[i])];
            var viaHttp = await remote.GetResponseAsync(messages, options);
            var inProcess = await local.GetResponseAsync(messages, options);
            Assert.Equal(f.Reference[i].Text, viaHttp.Text);
            Assert.Equal(f.Reference[i].Text, inProcess.Text);
            Assert.Equal(f.Reference[i].PromptIds.Length, inProcess.Usage!.InputTokenCount);
            Assert.Equal(viaHttp.Usage!.OutputTokenCount, inProcess.Usage.OutputTokenCount);

            var streamedRemote = new StringBuilder();
            await foreach (var u in remote.GetStreamingResponseAsync(messages, options)) streamedRemote.Append(u.Text);
            var streamedLocal = new StringBuilder();
            Microsoft.Extensions.AI.ChatFinishReason? finish = null;
            await foreach (var u in local.GetStreamingResponseAsync(messages, options))
            {
                streamedLocal.Append(u.Text);
                finish ??= u.FinishReason;
            }
            Assert.Equal(viaHttp.Text, streamedRemote.ToString());
            Assert.Equal(viaHttp.Text, streamedLocal.ToString());
            Assert.Equal(inProcess.FinishReason, finish);
        }
        Assert.NotNull(local.GetService<ChatClientMetadata>());
    }

    private HttpClient Authorized(string key = ChatServeFixture.Key)
    {
        var http = new HttpClient { BaseAddress = f.Url };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    [Fact]
    public async Task ApiKeyIsRequiredOnV1ButNotOnHealthAndMetrics()
    {
        using var none = new HttpClient { BaseAddress = f.Url };
        using var wrong = Authorized("sk-test-kez");
        using var right = Authorized();
        foreach (var client in new[] { none, wrong })
        {
            var response = await client.GetAsync("/v1/models");
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("invalid_api_key", error["code"]!.GetValue<string>());
        }
        Assert.Throws<ClientResultException>(() => OpenAiChat("wrong").CompleteChat([new UserChatMessage("hi")], Greedy));
        Assert.Equal(HttpStatusCode.OK, (await right.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await none.GetAsync("/health")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await none.GetAsync("/metrics")).StatusCode);

        // Bad chat fields are named.
        var bad = await right.PostAsync("/v1/chat/completions", new StringContent("{\"model\": \"tiny-llama3\", \"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("messages[0].role", JsonNode.Parse(await bad.Content.ReadAsStringAsync())!["error"]!["param"]!.GetValue<string>());
    }
}
