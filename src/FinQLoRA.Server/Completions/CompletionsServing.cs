using System.Text.Json;
using System.Threading.Channels;
using FinQLoRA.Server.Audit;
using FinQLoRA.Server.Common;
using FinQLoRA.Server.Tenancy;
using FinQLoRA.Serving;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Completions;

/// <summary>The logic of <c>POST /v1/completions</c>: prompt as a string, a list of strings, a list of token ids or a
/// list of such lists; n choices per prompt, echo, logprobs, stop, seed, vLLM's structured_outputs, streaming with usage.</summary>
internal static class CompletionsServing
{
    public static async Task<IResult> CreateAsync(HttpContext context, ServerState state, CompletionRequest request)
    {
        var (model, adapter) = ServedModel.Of(context, state, request.Model);
        var prompts = ReadPrompts(request.Prompt, state);
        var audit = AuditEntry.Of(context);
        audit?.Prompts(prompts.Sum(p => p.Ids.Length), prompts.Select(p => p.Text));
        int n = SamplingFields.Choices(request, state);
        if (RequestFields.InRange(request.BestOf, "best_of", 1, state.Options.MaxN) is { } bestOf && bestOf != n)
            throw new ApiException(400, "'best_of' other than n is not supported", "best_of", "unsupported_parameter");
        if (request.Suffix is { Length: > 0 }) throw new ApiException(400, "'suffix' is not supported", "suffix", "unsupported_parameter");
        bool echo = request.Echo ?? false;
        int? logprobs = RequestFields.InRange(request.Logprobs, "logprobs", 0, 20);
        if (echo && logprobs is not null)
            throw new ApiException(400, "'echo' together with 'logprobs' is not supported (prompt log probabilities are not computed)", "echo", "unsupported_parameter");
        var (stream, includeUsage) = SamplingFields.Streaming(request);
        int priority = PriorityField.Read(request.Priority, state);
        var sampling = SamplingFields.Read(request, RequestFields.InRange(request.MaxTokens, "max_tokens", 1, int.MaxValue) ?? 16, logprobs)
            with { Constraint = StructuredOutputs.Read(null, request.StructuredOutputs, state.Engine, null) };

        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        try
        {
            string? partition = CachePartition.Of(context, state, request.PromptCacheKey);
            var requests = prompts.SelectMany(p => Enumerable.Range(0, n).Select(j =>
                new EngineRequest(p.Ids, adapter, SamplingFields.ForChoice(sampling, j), cancel.Token) { CachePartition = partition, Priority = priority })).ToList();
            TokenAdmission.Admit(context, state, requests);
            var readers = EngineStreams.SubmitAll(state.Engine, requests, cancel);
            var head = new Head("cmpl-" + context.TraceIdentifier, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), model, includeUsage);
            int promptTokens = prompts.Sum(p => p.Ids.Length);
            if (stream)
            {
                await StreamAsync(context, readers, prompts, n, echo, head, promptTokens, cancel.Token).ConfigureAwait(false);
                return TypedResults.Empty;
            }
            var results = await EngineStreams.CompleteAllAsync(readers, cancel.Token).ConfigureAwait(false);
            audit?.Completed(results);
            var choices = results.Select((r, i) =>
            {
                string prefix = echo ? prompts[i / n].Text : "";
                return new CompletionChoice(i, prefix + r.Text, logprobs is null ? null : Logprobs(r.Logprobs, r.TopLogprobs, prefix.Length), r.FinishReason.Value);
            }).ToList();
            // each prompt is counted once, as its first choice read it
            int cachedTokens = results.Where((_, i) => i % n == 0).Sum(r => r.CachedTokens);
            return ApiResults.Json(head.Response(choices, UsageInfo.Of(promptTokens, results.Sum(r => r.CompletionTokens), cachedTokens)));
        }
        finally
        {
            cancel.Cancel(); // rows of an abandoned or failed request leave the batch; finished ones are gone already
        }
    }

    /// <summary>What every chunk of one response repeats.</summary>
    private sealed record Head(string Id, long Created, string Model, bool IncludeUsage)
    {
        public CompletionResponse Response(IReadOnlyList<CompletionChoice> choices, UsageInfo? usage) =>
            new(Id, "text_completion", Created, Model, choices, usage) { WritesNullUsage = IncludeUsage };

        public CompletionResponse Chunk(int index, string text, CompletionLogprobs? logprobs, string? finish) =>
            Response([new CompletionChoice(index, text, logprobs, finish)], null);
    }

    private static async Task StreamAsync(HttpContext context, List<ChannelReader<EngineEvent>> readers,
        List<Prompt> prompts, int n, bool echo, Head head, int promptTokens, CancellationToken cancellation)
    {
        await Sse.StartAsync(context).ConfigureAwait(false);
        var offsets = new int[readers.Count];
        if (echo)
            for (int i = 0; i < readers.Count; i++)
            {
                offsets[i] = prompts[i / n].Text.Length;
                await Sse.SendAsync(context, head.Chunk(i, prompts[i / n].Text, null, null)).ConfigureAwait(false);
            }
        int completionTokens = 0, finished = 0, cachedTokens = 0;
        var audit = AuditEntry.Of(context);
        await foreach (var (i, e) in EngineStreams.Merge(readers, cancellation).ConfigureAwait(false))
        {
            audit?.Streamed(i, e);
            CompletionLogprobs? lp = null;
            if (e.Logprob is { } t)
            {
                lp = Logprobs([t], [e.TopLogprobs ?? []], offsets[i]);
                offsets[i] += t.Text.Length;
            }
            if (e.TextDelta.Length == 0 && lp is null && !e.IsFinal) continue;
            await Sse.SendAsync(context, head.Chunk(i, e.TextDelta, lp, e.FinishReason?.Value)).ConfigureAwait(false);
            if (e.IsFinal)
            {
                completionTokens += e.CompletionTokens;
                if (i % n == 0) cachedTokens += e.CachedTokens; // each prompt once, as its first choice read it
                finished++;
            }
        }
        await Sse.EndAsync(context, finished, readers.Count,
            head.IncludeUsage ? head.Response([], UsageInfo.Of(promptTokens, completionTokens, cachedTokens)) : null).ConfigureAwait(false);
    }

    private static CompletionLogprobs Logprobs(IReadOnlyList<TokenLogprob> tokens, IReadOnlyList<IReadOnlyList<TokenLogprob>> top, int offset)
    {
        var offsets = new List<int>(tokens.Count);
        foreach (var t in tokens)
        {
            offsets.Add(offset);
            offset += t.Text.Length;
        }
        return new CompletionLogprobs(
            tokens.Select(t => t.Text).ToList(),
            tokens.Select(t => t.Logprob).ToList(),
            top.Select(alts =>
            {
                var o = new Dictionary<string, float>();
                foreach (var a in alts) o.TryAdd(a.Text, a.Logprob); // the more likely of two tokens that read the same
                return o;
            }).ToList(),
            offsets);
    }

    private sealed record Prompt(string Text, int[] Ids);

    private static List<Prompt> ReadPrompts(JsonElement? field, ServerState state)
    {
        var tokenizer = state.Engine.Tokenizer;
        Prompt FromText(string text) => new(text, tokenizer.Encode(text, addBos: tokenizer.AddsBosByDefault));
        Prompt FromIds(JsonElement array) => new(tokenizer.Decode(Ids(array), skipSpecialTokens: false), Ids(array));
        static int[] Ids(JsonElement a) => a.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int x) ? x
            : throw RequestJson.Wrong("prompt", "a string, a list of strings, a list of token ids or a list of such lists")).ToArray();

        var prompt = RequestFields.Present(field) ?? throw new ApiException(400, "'prompt' is required", "prompt", "missing_required_parameter");
        List<Prompt> prompts = prompt.ValueKind switch
        {
            JsonValueKind.String => [FromText(prompt.GetString()!)],
            JsonValueKind.Array when prompt.GetArrayLength() > 0 && prompt[0].ValueKind == JsonValueKind.Number => [FromIds(prompt)],
            JsonValueKind.Array => prompt.EnumerateArray().Select(e => e.ValueKind switch
            {
                JsonValueKind.String => FromText(e.GetString()!),
                JsonValueKind.Array => FromIds(e),
                _ => throw RequestJson.Wrong("prompt", "a string, a list of strings, a list of token ids or a list of such lists"),
            }).ToList(),
            _ => throw RequestJson.Wrong("prompt", "a string, a list of strings, a list of token ids or a list of such lists"),
        };
        if (prompts.Count == 0) throw new ApiException(400, "'prompt' must not be an empty list", "prompt");
        if (prompts.Count > 64) throw new ApiException(400, $"'prompt' holds {prompts.Count} prompts; at most 64 per request", "prompt");
        return prompts;
    }
}
