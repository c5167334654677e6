using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Serving;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server;

/// <summary><c>POST /v1/completions</c> (OpenAI's legacy completions): prompt as a string, a list of strings, a list of
/// token ids or a list of such lists; n choices per prompt, echo, logprobs, stop, seed, streaming with usage.</summary>
internal static class CompletionsEndpoint
{
    public static async Task HandleAsync(HttpContext context, ServerState state)
    {
        var body = await RequestBody.ReadAsync(context, state.Options.MaxBodyBytes).ConfigureAwait(false);
        string model = body.RequiredString("model");
        string? adapter = state.Models.Resolve(model);
        context.Items[ServerState.ModelItem] = model; // only served names become metric labels
        var prompts = ReadPrompts(body, state);
        int n = body.Int("n", 1, state.Options.MaxN) ?? 1;
        if (body.Int("best_of", 1, state.Options.MaxN) is { } bestOf && bestOf != n)
            throw new ApiException(400, "'best_of' other than n is not supported", "best_of", "unsupported_parameter");
        if (body.OptionalString("suffix") is { Length: > 0 }) throw new ApiException(400, "'suffix' is not supported", "suffix", "unsupported_parameter");
        bool echo = body.Bool("echo") ?? false;
        int? logprobs = body.Int("logprobs", 0, 20);
        if (echo && logprobs is not null)
            throw new ApiException(400, "'echo' together with 'logprobs' is not supported (prompt log probabilities are not computed)", "echo", "unsupported_parameter");
        bool stream = body.Bool("stream") ?? false;
        bool includeUsage = stream && body.Get("stream_options") is { ValueKind: JsonValueKind.Object } so
            && so.TryGetProperty("include_usage", out var iu) && iu.ValueKind == JsonValueKind.True;
        var sampling = SamplingFields.Read(body, body.Int("max_tokens", 1, int.MaxValue) ?? 16, logprobs);

        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        try
        {
            var requests = prompts.SelectMany(p => Enumerable.Range(0, n).Select(j =>
                new EngineRequest(p.Ids, adapter, SamplingFields.ForChoice(sampling, j), cancel.Token))).ToList();
            var readers = EngineStreams.SubmitAll(state.Engine, requests, cancel);
            string id = "cmpl-" + Guid.NewGuid().ToString("N");
            long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            int promptTokens = prompts.Sum(p => p.Ids.Length);
            if (stream) await StreamAsync(context, readers, prompts, n, echo, includeUsage, id, created, model, promptTokens, cancel.Token).ConfigureAwait(false);
            else
            {
                var results = await Task.WhenAll(readers.Select(r => EngineCompletion.ReadAsync(r, cancel.Token))).ConfigureAwait(false);
                var choices = new JsonArray();
                for (int i = 0; i < results.Length; i++)
                {
                    var r = results[i];
                    string prefix = echo ? prompts[i / n].Text : "";
                    choices.Add(new JsonObject
                    {
                        ["index"] = i,
                        ["text"] = prefix + r.Text,
                        ["logprobs"] = logprobs is null ? null : Logprobs(r.Logprobs, r.TopLogprobs, prefix.Length),
                        ["finish_reason"] = r.FinishReason,
                    });
                }
                var response = Envelope(id, created, model, choices);
                response["usage"] = Usage(promptTokens, results.Sum(r => r.CompletionTokens));
                await ServerState.WriteJsonAsync(context, response).ConfigureAwait(false);
            }
        }
        finally
        {
            cancel.Cancel(); // rows of an abandoned or failed request leave the batch; finished ones are gone already
        }
    }

    private static async Task StreamAsync(HttpContext context, List<System.Threading.Channels.ChannelReader<EngineEvent>> readers,
        List<Prompt> prompts, int n, bool echo, bool includeUsage, string id, long created, string model, int promptTokens, CancellationToken cancellation)
    {
        await Sse.StartAsync(context).ConfigureAwait(false);
        var offsets = new int[readers.Count];
        if (echo)
            for (int i = 0; i < readers.Count; i++)
            {
                offsets[i] = prompts[i / n].Text.Length;
                await Sse.SendAsync(context, Chunk(id, created, model, i, prompts[i / n].Text, null, null, includeUsage)).ConfigureAwait(false);
            }
        int completionTokens = 0, finished = 0;
        await foreach (var (i, e) in EngineStreams.Merge(readers, cancellation).ConfigureAwait(false))
        {
            JsonNode? lp = null;
            if (e.Logprob is { } t)
            {
                lp = Logprobs([t], [e.TopLogprobs ?? []], offsets[i]);
                offsets[i] += t.Text.Length;
            }
            if (e.TextDelta.Length == 0 && lp is null && !e.IsFinal) continue;
            await Sse.SendAsync(context, Chunk(id, created, model, i, e.TextDelta, lp, e.FinishReason, includeUsage)).ConfigureAwait(false);
            if (e.IsFinal) { completionTokens += e.CompletionTokens; finished++; }
        }
        if (finished < readers.Count) throw new OperationCanceledException("a choice ended before it finished");
        if (includeUsage)
        {
            var last = Envelope(id, created, model, []);
            last["usage"] = Usage(promptTokens, completionTokens);
            await Sse.SendAsync(context, last).ConfigureAwait(false);
        }
        await Sse.DoneAsync(context).ConfigureAwait(false);
    }

    private static JsonObject Chunk(string id, long created, string model, int index, string text, JsonNode? logprobs, string? finish, bool includeUsage)
    {
        var chunk = Envelope(id, created, model, [new JsonObject
        {
            ["index"] = index,
            ["text"] = text,
            ["logprobs"] = logprobs,
            ["finish_reason"] = finish,
        }]);
        if (includeUsage) chunk["usage"] = null;
        return chunk;
    }

    private static JsonObject Envelope(string id, long created, string model, JsonArray choices) => new()
    {
        ["id"] = id,
        ["object"] = "text_completion",
        ["created"] = created,
        ["model"] = model,
        ["choices"] = choices,
    };

    public static JsonObject Usage(int prompt, int completion) => new()
    {
        ["prompt_tokens"] = prompt,
        ["completion_tokens"] = completion,
        ["total_tokens"] = prompt + completion,
    };

    /// <summary>The legacy logprobs object: tokens, token_logprobs, top_logprobs (token → logprob) and text_offset.</summary>
    private static JsonObject Logprobs(IReadOnlyList<TokenLogprob> tokens, IReadOnlyList<IReadOnlyList<TokenLogprob>> top, int offset)
    {
        var offsets = new JsonArray();
        foreach (var t in tokens)
        {
            offsets.Add(offset);
            offset += t.Text.Length;
        }
        return new JsonObject
        {
            ["tokens"] = new JsonArray(tokens.Select(t => (JsonNode)t.Text).ToArray()),
            ["token_logprobs"] = new JsonArray(tokens.Select(t => (JsonNode)t.Logprob).ToArray()),
            ["top_logprobs"] = new JsonArray(top.Select(alts =>
            {
                var o = new JsonObject();
                foreach (var a in alts) o[a.Text] ??= a.Logprob; // the more likely of two tokens that read the same
                return (JsonNode)o;
            }).ToArray()),
            ["text_offset"] = offsets,
        };
    }

    private sealed record Prompt(string Text, int[] Ids);

    private static List<Prompt> ReadPrompts(RequestBody body, ServerState state)
    {
        var tokenizer = state.Engine.Tokenizer;
        Prompt FromText(string text) => new(text, tokenizer.Encode(text, addBos: tokenizer.AddsBosByDefault));
        Prompt FromIds(JsonElement array) => new(tokenizer.Decode(Ids(array), skipSpecialTokens: false), Ids(array));
        static int[] Ids(JsonElement a) => a.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int x) ? x
            : throw RequestBody.Wrong("prompt", "a string, a list of strings, a list of token ids or a list of such lists")).ToArray();

        var prompt = body.Get("prompt") ?? throw new ApiException(400, "'prompt' is required", "prompt", "missing_required_parameter");
        List<Prompt> prompts = prompt.ValueKind switch
        {
            JsonValueKind.String => [FromText(prompt.GetString()!)],
            JsonValueKind.Array when prompt.GetArrayLength() > 0 && prompt[0].ValueKind == JsonValueKind.Number => [FromIds(prompt)],
            JsonValueKind.Array => prompt.EnumerateArray().Select(e => e.ValueKind switch
            {
                JsonValueKind.String => FromText(e.GetString()!),
                JsonValueKind.Array => FromIds(e),
                _ => throw RequestBody.Wrong("prompt", "a string, a list of strings, a list of token ids or a list of such lists"),
            }).ToList(),
            _ => throw RequestBody.Wrong("prompt", "a string, a list of strings, a list of token ids or a list of such lists"),
        };
        if (prompts.Count == 0) throw new ApiException(400, "'prompt' must not be an empty list", "prompt");
        if (prompts.Count > 64) throw new ApiException(400, $"'prompt' holds {prompts.Count} prompts; at most 64 per request", "prompt");
        return prompts;
    }
}
