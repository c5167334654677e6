using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using FinQLoRA.Server.ChatCompletions;
using FinQLoRA.Server.Common;
using FinQLoRA.Server.Completions;
using FinQLoRA.Server.Adapters;
using FinQLoRA.Server.Models;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Tests.Serving;

/// <summary>The server's protocol records against OpenAI's wire format: samples from OpenAI's API reference bind and
/// serialize back field for field, fields we do not model are ignored, a field of the wrong type is named, and streamed
/// chunks are written byte for byte as before the records.</summary>
public sealed class ServerProtocolTests
{
    // The chat.completion example of OpenAI's API reference (POST /v1/chat/completions, "Default" response).
    private const string ChatCompletionSample = """
        {
          "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
          "object": "chat.completion",
          "created": 1741569952,
          "model": "gpt-4.1-2025-04-14",
          "system_fingerprint": "fp_44709d6fcb",
          "choices": [
            {
              "index": 0,
              "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": null,
                "annotations": []
              },
              "logprobs": null,
              "finish_reason": "stop"
            }
          ],
          "usage": {
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "total_tokens": 29,
            "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
            "completion_tokens_details": { "reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0 }
          },
          "service_tier": "default"
        }
        """;

    // The text_completion example of OpenAI's API reference (POST /v1/completions).
    private const string CompletionSample = """
        {
          "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
          "object": "text_completion",
          "created": 1589478378,
          "model": "gpt-3.5-turbo-instruct",
          "system_fingerprint": "fp_44709d6fcb",
          "choices": [
            { "text": "\n\nThis is indeed a test", "index": 0, "logprobs": null, "finish_reason": "length" }
          ],
          "usage": { "prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12 }
        }
        """;

    /// <summary>The sample without the fields our records do not model.</summary>
    private static JsonNode Without(string sample, params string[] paths)
    {
        var node = JsonNode.Parse(sample)!;
        foreach (string path in paths)
        {
            var parts = path.Split('.');
            JsonNode parent = node;
            foreach (string part in parts[..^1]) parent = int.TryParse(part, out int i) ? parent[i]! : parent[part]!;
            Assert.True(parent.AsObject().Remove(parts[^1]), path);
        }
        return node;
    }

    [Fact]
    public void OpenAisChatCompletionSampleRoundTripsFieldForField()
    {
        var response = JsonSerializer.Deserialize(ChatCompletionSample, OpenAiJson.Info<ChatCompletionObject<ChatChoice>>())!;
        Assert.Equal("chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", response.Id);
        Assert.Equal("chat.completion", response.Object);
        Assert.Equal(1741569952, response.Created);
        Assert.Equal("fp_44709d6fcb", response.SystemFingerprint);
        var choice = Assert.Single(response.Choices);
        Assert.Equal(("assistant", "Hello! How can I assist you today?"), (choice.Message.Role, choice.Message.Content));
        Assert.Null(choice.Logprobs);
        Assert.Equal("stop", choice.FinishReason);
        Assert.Equal(new UsageInfo(19, 10, 29), response.Usage);

        var written = JsonNode.Parse(OpenAiJson.Serialize(response));
        var expected = Without(ChatCompletionSample, "choices.0.message.refusal", "choices.0.message.annotations",
            "usage.prompt_tokens_details.audio_tokens", "usage.completion_tokens_details", "service_tier");
        Assert.True(JsonNode.DeepEquals(expected, written), written!.ToJsonString());
    }

    [Fact]
    public void OpenAisCompletionSampleRoundTripsFieldForField()
    {
        var response = JsonSerializer.Deserialize(CompletionSample, OpenAiJson.Info<CompletionResponse>())!;
        var choice = Assert.Single(response.Choices);
        Assert.Equal(("\n\nThis is indeed a test", 0, "length"), (choice.Text, choice.Index, choice.FinishReason));
        Assert.Equal(new UsageInfo(5, 7, 12), response.Usage);

        var written = JsonNode.Parse(OpenAiJson.Serialize(response));
        // cached_tokens is always written (OpenAI's chat sample has it; this older sample does not)
        var expected = Without(CompletionSample, "system_fingerprint");
        expected["usage"]!["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = 0 };
        Assert.True(JsonNode.DeepEquals(expected, written), written!.ToJsonString());
    }

    private static Task<T> BindAsync<T>(string body, Func<string, ApiException?>? typeError = null)
    {
        var context = new DefaultHttpContext();
        context.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(body));
        return RequestJson.ReadAsync<T>(context, 1 << 20, typeError);
    }

    [Fact]
    public async Task OpenAisChatRequestSampleBindsAndUnknownFieldsAreIgnored()
    {
        // The request of the API reference's "Default" example, then the same with fields this server does not read.
        const string sample = """{"model": "gpt-4.1", "messages": [{"role": "developer", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hello!"}]}""";
        var request = await BindAsync<ChatCompletionRequest>(sample);
        Assert.Equal("gpt-4.1", request.Model);
        Assert.Equal(["developer", "user"], request.Messages!.Select(m => m!.Role));
        Assert.Equal("Hello!", request.Messages![1]!.Content!.Value.GetString());

        var extended = JsonNode.Parse(sample)!.AsObject();
        extended["user"] = "user-1234";
        extended["metadata"] = new JsonObject { ["k"] = "v" };
        extended["parallel_tool_calls"] = true;
        extended["messages"]![1]!["name"] = "alice";
        var withUnknown = await BindAsync<ChatCompletionRequest>(extended.ToJsonString());
        Assert.Equal(request.Model, withUnknown.Model);
        Assert.Equal(request.Messages!.Select(m => (m!.Role, m.Content!.Value.GetRawText())), withUnknown.Messages!.Select(m => (m!.Role, m.Content!.Value.GetRawText())));

        // JSON null is absent, as in OpenAI's API.
        var nulls = await BindAsync<CompletionRequest>("""{"model": "m", "prompt": "x", "temperature": null, "n": null, "stop": null}""");
        Assert.Null(nulls.Temperature);
        Assert.Null(nulls.N);
        Assert.Null(RequestFields.Present(nulls.Stop));
    }

    [Fact]
    public async Task AFieldOfTheWrongTypeIsNamedWithWhatItMustBe()
    {
        async Task<ApiException> Refused<T>(string body, Func<string, ApiException?>? typeError = null) =>
            await Assert.ThrowsAsync<ApiException>(() => BindAsync<T>(body, typeError));

        foreach (var (field, value, what) in new[] { ("temperature", "\"hot\"", "a number"), ("max_tokens", "\"many\"", "an integer"),
            ("n", "1.5", "an integer"), ("echo", "1", "true or false"), ("model", "5", "a string"), ("seed", "1e30", "an integer") })
        {
            var body = new JsonObject { ["model"] = "m", ["prompt"] = "x" };
            body[field] = JsonNode.Parse(value);
            var e = await Refused<CompletionRequest>(body.ToJsonString());
            Assert.Equal((400, $"'{field}' must be {what}", field, "invalid_type"), (e.Status, e.Message, e.Param, e.Code));
        }
        Assert.Equal("messages[1].role", (await Refused<ChatCompletionRequest>("""{"messages": [{"role": "user"}, {"role": 5}]}""", ChatCompletionsServing.MessagesTypeError)).Param);
        Assert.Equal("'messages[0]' must be an object with 'role' and 'content'", (await Refused<ChatCompletionRequest>("""{"messages": [3]}""", ChatCompletionsServing.MessagesTypeError)).Message);
        Assert.Equal("'messages' must be a list of messages", (await Refused<ChatCompletionRequest>("""{"messages": "hi"}""", ChatCompletionsServing.MessagesTypeError)).Message);
        Assert.StartsWith("the request body is not valid JSON", (await Refused<CompletionRequest>("{not json")).Message);
        Assert.Equal("the request body must be a JSON object", (await Refused<CompletionRequest>("[1, 2]")).Message);
    }

    /// <summary>The records spell no names: each field's wire name is its property's name in snake case, which must
    /// be OpenAI's (and vLLM's) name for it.</summary>
    [Fact]
    public void EveryFieldHasItsOpenAiName()
    {
        static bool OnTheWire(JsonPropertyInfo p) => p.AttributeProvider?.GetCustomAttributes(typeof(JsonIgnoreAttribute), false)
            .Cast<JsonIgnoreAttribute>().Any(a => a.Condition == JsonIgnoreCondition.Always) != true;
        static string[] Names<T>() => OpenAiJson.Info<T>().Properties.Where(OnTheWire).Select(p => p.Name).Order(StringComparer.Ordinal).ToArray();
        static string[] Sorted(string names) => names.Split(' ').Order(StringComparer.Ordinal).ToArray();
        const string sampling = "model n max_tokens stream stream_options temperature top_p top_k seed stop logit_bias presence_penalty frequency_penalty prompt_cache_key structured_outputs priority";

        Assert.Equal(Sorted(sampling + " prompt best_of suffix echo logprobs"), Names<CompletionRequest>());
        Assert.Equal(Sorted(sampling + " messages tools response_format logprobs top_logprobs max_completion_tokens"), Names<ChatCompletionRequest>());
        Assert.Equal(Sorted("role content"), Names<ChatMessageParam>());
        Assert.Equal(Sorted("id object created model system_fingerprint choices usage"), Names<ChatCompletionObject<ChatChunkChoice>>());
        Assert.Equal(Sorted("index delta logprobs finish_reason"), Names<ChatChunkChoice>());
        Assert.Equal(Sorted("token logprob bytes top_logprobs"), Names<ChatTokenLogprob>());
        Assert.Equal(Sorted("id object created model choices usage"), Names<CompletionResponse>());
        Assert.Equal(Sorted("tokens token_logprobs top_logprobs text_offset"), Names<CompletionLogprobs>());
        Assert.Equal(Sorted("prompt_tokens completion_tokens total_tokens prompt_tokens_details"), Names<UsageInfo>());
        Assert.Equal(Sorted("message type param code"), Names<ErrorInfo>());
        Assert.Equal(Sorted("id object created owned_by root parent max_model_len finqlora_lineage"), Names<ModelCard>());
        Assert.Equal(Sorted("object data"), Names<ModelList>());
        Assert.Equal(Sorted("lora_name lora_path"), Names<LoadLoraAdapterRequest>());
        Assert.Equal(Sorted("lora_name"), Names<UnloadLoraAdapterRequest>());
    }

    [Fact]
    public void StreamedChunksAreWrittenByteForByteAsBefore()
    {
        // usage: null on every chunk only when the client asked for usage; non-ASCII text as itself.
        var choice = new CompletionChoice(0, "café", null, null);
        var chunk = new CompletionResponse("cmpl-1", "text_completion", 7, "m", [choice], null);
        Assert.Equal("""{"id":"cmpl-1","object":"text_completion","created":7,"model":"m","choices":[{"index":0,"text":"café","logprobs":null,"finish_reason":null}]}""",
            OpenAiJson.Serialize(chunk));
        Assert.Equal("""{"id":"cmpl-1","object":"text_completion","created":7,"model":"m","choices":[{"index":0,"text":"café","logprobs":null,"finish_reason":null}],"usage":null}""",
            OpenAiJson.Serialize(chunk with { WritesNullUsage = true }));

        // chat: the role on the first chunk, the text on the next, an empty delta with the finish reason on the last
        ChatCompletionObject<ChatChunkChoice> Chat(ChatDelta delta, string? finish) => new("chatcmpl-1", "chat.completion.chunk", 7, "m", null, [new ChatChunkChoice(0, delta, null, finish)], null);
        const string head = """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","system_fingerprint":null,"choices":[{"index":0,"delta":""";
        Assert.Equal(head + """{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}""", OpenAiJson.Serialize(Chat(new ChatDelta("assistant", ""), null)));
        Assert.Equal(head + """{"content":"<é>"},"logprobs":null,"finish_reason":null}]}""", OpenAiJson.Serialize(Chat(new ChatDelta(null, "<é>"), null)));
        Assert.Equal(head + """{},"logprobs":null,"finish_reason":"stop"}]}""", OpenAiJson.Serialize(Chat(new ChatDelta(null, null), "stop")));
    }
}
