using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Data.Chat;
using FinQLoRA.Serving;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server;

/// <summary><c>POST /v1/chat/completions</c>: messages rendered with the model's chat format, n choices, logprobs with
/// top_logprobs, stop, seed, and SSE streaming (the first chunk of a choice carries the role).</summary>
internal static class ChatCompletionsEndpoint
{
    public static async Task HandleAsync(HttpContext context, ServerState state)
    {
        var body = await RequestBody.ReadAsync(context, state.Options.MaxBodyBytes).ConfigureAwait(false);
        string model = body.RequiredString("model");
        string? adapter = state.Models.Resolve(model);
        context.Items[ServerState.ModelItem] = model; // only served names become metric labels
        var messages = ReadMessages(body);
        var format = state.Options.ChatFormat
            ?? throw new ApiException(400, $"model '{state.Models.BaseName}' has no chat template: its tokenizer has neither Llama 3's header tokens nor a ChatML chat_template in tokenizer_config.json; use /v1/completions with your own prompt format", "messages", "no_chat_template");
        body.Unsupported("tools", v => v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0);
        body.Unsupported("response_format", v => v.ValueKind == JsonValueKind.Object && v.TryGetProperty("type", out var t) && t.GetString() == "text");
        int n = body.Int("n", 1, state.Options.MaxN) ?? 1;
        bool logprobs = body.Bool("logprobs") ?? false;
        int? top = body.Int("top_logprobs", 0, 20);
        if (top is not null && !logprobs) throw new ApiException(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs");
        bool stream = body.Bool("stream") ?? false;
        bool includeUsage = stream && body.Get("stream_options") is { ValueKind: JsonValueKind.Object } so
            && so.TryGetProperty("include_usage", out var iu) && iu.ValueKind == JsonValueKind.True;

        var tokenizer = state.Engine.Tokenizer;
        var ids = tokenizer.Encode(format.Render(messages), addBos: false);
        int? maxTokens = body.Int("max_completion_tokens", 1, int.MaxValue) ?? body.Int("max_tokens", 1, int.MaxValue);
        // Without a limit the answer may use the rest of the context, as vLLM does.
        var sampling = SamplingFields.Read(body, maxTokens ?? Math.Max(1, state.Engine.Options.MaxModelLen - ids.Length), logprobs ? top ?? 0 : null)
            with { StopTokenIds = format.StopIds };

        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        try
        {
            var requests = Enumerable.Range(0, n).Select(j => new EngineRequest(ids, adapter, SamplingFields.ForChoice(sampling, j), cancel.Token));
            var readers = EngineStreams.SubmitAll(state.Engine, requests, cancel);
            string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
            long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            if (stream)
            {
                await StreamAsync(context, readers, includeUsage, id, created, model, ids.Length, cancel.Token).ConfigureAwait(false);
                return;
            }
            var results = await Task.WhenAll(readers.Select(r => EngineCompletion.ReadAsync(r, cancel.Token))).ConfigureAwait(false);
            var choices = new JsonArray(results.Select((r, i) => (JsonNode)new JsonObject
            {
                ["index"] = i,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = r.Text },
                ["logprobs"] = logprobs ? new JsonObject { ["content"] = Content(r.Logprobs, r.TopLogprobs) } : null,
                ["finish_reason"] = r.FinishReason,
            }).ToArray());
            var response = Envelope(id, "chat.completion", created, model, choices);
            response["usage"] = CompletionsEndpoint.Usage(ids.Length, results.Sum(r => r.CompletionTokens));
            await ServerState.WriteJsonAsync(context, response).ConfigureAwait(false);
        }
        finally
        {
            cancel.Cancel();
        }
    }

    private static async Task StreamAsync(HttpContext context, List<System.Threading.Channels.ChannelReader<EngineEvent>> readers,
        bool includeUsage, string id, long created, string model, int promptTokens, CancellationToken cancellation)
    {
        await Sse.StartAsync(context).ConfigureAwait(false);
        for (int i = 0; i < readers.Count; i++)
            await Sse.SendAsync(context, Chunk(id, created, model, i, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null, includeUsage)).ConfigureAwait(false);
        int completionTokens = 0, finished = 0;
        await foreach (var (i, e) in EngineStreams.Merge(readers, cancellation).ConfigureAwait(false))
        {
            JsonNode? lp = e.Logprob is { } t ? new JsonObject { ["content"] = Content([t], [e.TopLogprobs ?? []]) } : null;
            if (e.TextDelta.Length > 0 || lp is not null)
                await Sse.SendAsync(context, Chunk(id, created, model, i, new JsonObject { ["content"] = e.TextDelta }, lp, null, includeUsage)).ConfigureAwait(false);
            if (e.IsFinal)
            {
                completionTokens += e.CompletionTokens;
                finished++;
                await Sse.SendAsync(context, Chunk(id, created, model, i, [], null, e.FinishReason, includeUsage)).ConfigureAwait(false);
            }
        }
        if (finished < readers.Count) throw new OperationCanceledException("a choice ended before it finished");
        if (includeUsage)
        {
            var last = Envelope(id, "chat.completion.chunk", created, model, []);
            last["usage"] = CompletionsEndpoint.Usage(promptTokens, completionTokens);
            await Sse.SendAsync(context, last).ConfigureAwait(false);
        }
        await Sse.DoneAsync(context).ConfigureAwait(false);
    }

    private static JsonObject Chunk(string id, long created, string model, int index, JsonObject delta, JsonNode? logprobs, string? finish, bool includeUsage)
    {
        var chunk = Envelope(id, "chat.completion.chunk", created, model, [new JsonObject
        {
            ["index"] = index,
            ["delta"] = delta,
            ["logprobs"] = logprobs,
            ["finish_reason"] = finish,
        }]);
        if (includeUsage) chunk["usage"] = null;
        return chunk;
    }

    private static JsonObject Envelope(string id, string kind, long created, string model, JsonArray choices) => new()
    {
        ["id"] = id,
        ["object"] = kind,
        ["created"] = created,
        ["model"] = model,
        ["system_fingerprint"] = null,
        ["choices"] = choices,
    };

    private static JsonArray Content(IReadOnlyList<TokenLogprob> tokens, IReadOnlyList<IReadOnlyList<TokenLogprob>> top) =>
        new(tokens.Select((t, i) =>
        {
            var entry = Entry(t);
            entry["top_logprobs"] = new JsonArray(top[i].Select(a => (JsonNode)Entry(a)).ToArray());
            return (JsonNode)entry;
        }).ToArray());

    private static JsonObject Entry(TokenLogprob t) => new()
    {
        ["token"] = t.Text,
        ["logprob"] = t.Logprob,
        ["bytes"] = new JsonArray(Encoding.UTF8.GetBytes(t.Text).Select(b => (JsonNode)(int)b).ToArray()),
    };

    private static List<ChatTurn> ReadMessages(RequestBody body)
    {
        if (body.Get("messages") is not { ValueKind: JsonValueKind.Array } array)
            throw body.Get("messages") is null
                ? new ApiException(400, "'messages' is required", "messages", "missing_required_parameter")
                : RequestBody.Wrong("messages", "a list of messages");
        var messages = new List<ChatTurn>();
        int i = 0;
        foreach (var m in array.EnumerateArray())
        {
            string param = $"messages[{i++}]";
            if (m.ValueKind != JsonValueKind.Object) throw RequestBody.Wrong(param, "an object with 'role' and 'content'");
            string role = m.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : throw RequestBody.Wrong(param + ".role", "a string");
            if (role == "developer") role = "system"; // OpenAI's newer name for the system role
            if (role is not ("system" or "user" or "assistant"))
                throw new ApiException(400, $"{param}.role '{role}' is not one of system, developer, user, assistant", param + ".role");
            messages.Add(new ChatTurn(role, Text(m, param)));
        }
        if (messages.Count == 0) throw new ApiException(400, "'messages' must not be empty", "messages");
        return messages;
    }

    private static string Text(JsonElement message, string param)
    {
        if (!message.TryGetProperty("content", out var c) || c.ValueKind == JsonValueKind.Null) return "";
        if (c.ValueKind == JsonValueKind.String) return c.GetString()!;
        if (c.ValueKind != JsonValueKind.Array) throw RequestBody.Wrong(param + ".content", "a string or a list of text parts");
        var sb = new StringBuilder();
        foreach (var part in c.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var t) || t.GetString() != "text"
                || !part.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                throw new ApiException(400, $"{param}.content: only text parts ({{\"type\": \"text\", \"text\": ...}}) are supported", param + ".content");
            sb.Append(text.GetString());
        }
        return sb.ToString();
    }
}
