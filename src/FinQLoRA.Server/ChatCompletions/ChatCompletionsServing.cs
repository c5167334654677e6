using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using FinQLoRA.Data.Chat;
using FinQLoRA.Server.Audit;
using FinQLoRA.Server.Common;
using FinQLoRA.Server.Tenancy;
using FinQLoRA.Serving;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.ChatCompletions;

/// <summary>The logic of <c>POST /v1/chat/completions</c>: messages rendered with the model's chat format, n choices,
/// logprobs with top_logprobs, stop, seed, structured outputs (<c>response_format</c>, <c>structured_outputs</c>), and
/// SSE streaming (the first chunk of a choice carries the role).</summary>
internal static class ChatCompletionsServing
{
    public static async Task<IResult> CreateAsync(HttpContext context, ServerState state, ChatCompletionRequest request)
    {
        var (model, adapter) = ServedModel.Of(context, state, request.Model);
        var messages = ReadMessages(request.Messages);
        var format = FormatOf(state);
        RequestFields.Unsupported(request.Tools, "tools", v => v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0);
        int n = SamplingFields.Choices(request, state);
        bool logprobs = request.Logprobs ?? false;
        int? top = RequestFields.InRange(request.TopLogprobs, "top_logprobs", 0, 20);
        if (top is not null && !logprobs) throw new ApiException(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs");
        var (stream, includeUsage) = SamplingFields.Streaming(request);
        int priority = PriorityField.Read(request.Priority, state);

        string prompt;
        try { prompt = format.Render(messages); }
        catch (UserInputException e) { throw new ApiException(400, e.Message, "messages"); } // the template's own rules (turn order, roles)
        var ids = state.Engine.Tokenizer.Encode(prompt, addBos: false);
        var audit = AuditEntry.Of(context);
        audit?.Prompts(ids.Length, [prompt]);
        int? maxTokens = RequestFields.InRange(request.MaxCompletionTokens, "max_completion_tokens", 1, int.MaxValue)
            ?? RequestFields.InRange(request.MaxTokens, "max_tokens", 1, int.MaxValue);
        // Without a limit the answer may use the rest of the context, as vLLM does.
        var constraint = StructuredOutputs.Read(request.ResponseFormat, request.StructuredOutputs, state.Engine, format.StopIds);
        var sampling = SamplingFields.Read(request, maxTokens ?? Math.Max(1, state.Engine.Options.MaxModelLen - ids.Length), logprobs ? top ?? 0 : null)
            with { StopTokenIds = format.StopIds, Constraint = constraint };

        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        try
        {
            string? partition = CachePartition.Of(context, state, request.PromptCacheKey);
            var requests = Enumerable.Range(0, n).Select(j =>
                new EngineRequest(ids, adapter, SamplingFields.ForChoice(sampling, j), cancel.Token) { CachePartition = partition, Priority = priority }).ToList();
            TokenAdmission.Admit(context, state, requests);
            var readers = EngineStreams.SubmitAll(state.Engine, requests, cancel);
            string id = "chatcmpl-" + context.TraceIdentifier;
            long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            if (stream)
            {
                var head = new ChunkHead(id, created, model, includeUsage);
                await StreamAsync(context, readers, head, ids.Length, cancel.Token).ConfigureAwait(false);
                return TypedResults.Empty;
            }
            var results = await EngineStreams.CompleteAllAsync(readers, cancel.Token).ConfigureAwait(false);
            audit?.Completed(results);
            var choices = results.Select((r, i) => new ChatChoice(i, new ChatResponseMessage("assistant", r.Text),
                logprobs ? new ChatLogprobs(Content(r.Logprobs, r.TopLogprobs)) : null, r.FinishReason.Value)).ToList();
            return ApiResults.Json(new ChatCompletionObject<ChatChoice>(id, "chat.completion", created, model, null, choices,
                UsageInfo.Of(ids.Length, results.Sum(r => r.CompletionTokens), results[0].CachedTokens)));
        }
        finally
        {
            cancel.Cancel();
        }
    }

    /// <summary>What every chunk of one stream repeats.</summary>
    private sealed record ChunkHead(string Id, long Created, string Model, bool IncludeUsage)
    {
        public ChatCompletionObject<ChatChunkChoice> Chunk(IReadOnlyList<ChatChunkChoice> choices, UsageInfo? usage = null) =>
            new(Id, "chat.completion.chunk", Created, Model, null, choices, usage) { WritesNullUsage = IncludeUsage };

        public ChatCompletionObject<ChatChunkChoice> Chunk(int index, ChatDelta delta, ChatLogprobs? logprobs, string? finish) =>
            Chunk([new ChatChunkChoice(index, delta, logprobs, finish)]);
    }

    private static async Task StreamAsync(HttpContext context, List<ChannelReader<EngineEvent>> readers, ChunkHead head,
        int promptTokens, CancellationToken cancellation)
    {
        await Sse.StartAsync(context).ConfigureAwait(false);
        for (int i = 0; i < readers.Count; i++)
            await Sse.SendAsync(context, head.Chunk(i, new ChatDelta("assistant", ""), null, null)).ConfigureAwait(false);
        int completionTokens = 0, finished = 0, cachedTokens = 0;
        var audit = AuditEntry.Of(context);
        await foreach (var (i, e) in EngineStreams.Merge(readers, cancellation).ConfigureAwait(false))
        {
            audit?.Streamed(i, e);
            ChatLogprobs? lp = e.Logprob is { } t ? new ChatLogprobs(Content([t], [e.TopLogprobs ?? []])) : null;
            if (e.TextDelta.Length > 0 || lp is not null)
                await Sse.SendAsync(context, head.Chunk(i, new ChatDelta(null, e.TextDelta), lp, null)).ConfigureAwait(false);
            if (e.IsFinal)
            {
                completionTokens += e.CompletionTokens;
                if (i == 0) cachedTokens = e.CachedTokens; // the prompt is counted once, as its first choice read it
                finished++;
                await Sse.SendAsync(context, head.Chunk(i, new ChatDelta(null, null), null, e.FinishReason!.Value)).ConfigureAwait(false);
            }
        }
        await Sse.EndAsync(context, finished, readers.Count,
            head.IncludeUsage ? head.Chunk([], UsageInfo.Of(promptTokens, completionTokens, cachedTokens)) : null).ConfigureAwait(false);
    }

    private static List<ChatTokenLogprob> Content(IReadOnlyList<TokenLogprob> tokens, IReadOnlyList<IReadOnlyList<TokenLogprob>> top) =>
        tokens.Select((t, i) => new ChatTokenLogprob(t.Text, t.Logprob, Bytes(t.Text),
            top[i].Select(a => new ChatTopLogprob(a.Text, a.Logprob, Bytes(a.Text))).ToList())).ToList();

    private static int[] Bytes(string text) => Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();

    /// <summary>Names a message field of the wrong JSON type as the checks below do.</summary>
    public static ApiException? MessagesTypeError(string path)
    {
        if (path == "$.messages") return RequestJson.Wrong("messages", "a list of messages");
        if (!path.StartsWith("$.messages[", StringComparison.Ordinal)) return null;
        string param = path[2..];
        return param.EndsWith(".role", StringComparison.Ordinal)
            ? RequestJson.Wrong(param, "a string")
            : RequestJson.Wrong(param, "an object with 'role' and 'content'");
    }

    /// <summary>The model's chat format; a 400 naming why there is none.</summary>
    internal static ChatFormat FormatOf(ServerState state) => state.Options.ChatFormat
        ?? throw new ApiException(400, $"model '{state.Models.BaseName}' has no chat template we render: {state.Options.ChatFormatRefusal ?? $"its tokenizer_config.json chat_template is none of {ChatTemplate.Names} with its special tokens in the tokenizer"}; use /v1/completions with your own prompt format", "messages", "no_chat_template");

    internal static List<ChatTurn> ReadMessages(IReadOnlyList<ChatMessageParam?>? list)
    {
        if (list is null) throw new ApiException(400, "'messages' is required", "messages", "missing_required_parameter");
        var messages = new List<ChatTurn>();
        for (int i = 0; i < list.Count; i++)
        {
            string param = $"messages[{i}]";
            var m = list[i] ?? throw RequestJson.Wrong(param, "an object with 'role' and 'content'");
            string role = m.Role ?? throw RequestJson.Wrong(param + ".role", "a string");
            if (role == "developer") role = "system"; // OpenAI's newer name for the system role
            if (role is not ("system" or "user" or "assistant"))
                throw new ApiException(400, $"{param}.role '{role}' is not one of system, developer, user, assistant", param + ".role");
            messages.Add(new ChatTurn(role, Text(m.Content, param)));
        }
        if (messages.Count == 0) throw new ApiException(400, "'messages' must not be empty", "messages");
        return messages;
    }

    private static string Text(JsonElement? content, string param)
    {
        if (RequestFields.Present(content) is not { } c) return "";
        if (c.ValueKind == JsonValueKind.String) return c.GetString()!;
        if (c.ValueKind != JsonValueKind.Array) throw RequestJson.Wrong(param + ".content", "a string or a list of text parts");
        var sb = new StringBuilder();
        foreach (var part in c.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var t) || t.ValueKind != JsonValueKind.String || t.GetString() != "text"
                || !part.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                throw new ApiException(400, $"{param}.content: only text parts ({{\"type\": \"text\", \"text\": ...}}) are supported", param + ".content");
            sb.Append(text.GetString());
        }
        return sb.ToString();
    }
}
