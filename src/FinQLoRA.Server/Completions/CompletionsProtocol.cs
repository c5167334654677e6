using System.Text.Json;
using System.Text.Json.Serialization;
using FinQLoRA.Server.Common;

namespace FinQLoRA.Server.Completions;

// POST /v1/completions (OpenAI's legacy completions), field for field as OpenAI names them (the fields shared with
// /v1/chat/completions are SamplingRequest's). Fields this server reads only; others are ignored.

internal sealed record CompletionRequest : SamplingRequest
{
    /// <summary>A string, a list of strings, a list of token ids or a list of such lists.</summary>
    public JsonElement? Prompt { get; init; }
    /// <summary>Accepted only equal to n.</summary>
    public long? BestOf { get; init; }
    /// <summary>Accepted only empty.</summary>
    public string? Suffix { get; init; }
    public bool? Echo { get; init; }
    /// <summary>How many alternatives per token to return (0-20); null returns no logprobs.</summary>
    public long? Logprobs { get; init; }
}

/// <summary>The response, and each streamed chunk (<c>object</c> is <c>text_completion</c> in both, as OpenAI sends it);
/// the last chunk of a stream that asked for usage has no choices and the usage.</summary>
internal sealed record CompletionResponse(
    string Id,
    string Object,
    long Created,
    string Model,
    IReadOnlyList<CompletionChoice> Choices,
    UsageInfo? Usage) : IStreamChunk
{
    [JsonIgnore] public bool WritesNullUsage { get; init; }
}

internal sealed record CompletionChoice(int Index, string Text, CompletionLogprobs? Logprobs, string? FinishReason);

/// <summary>The legacy logprobs object: per token its text, log probability, alternatives (text → logprob) and the
/// offset of its text in the choice's text.</summary>
internal sealed record CompletionLogprobs(
    IReadOnlyList<string> Tokens,
    IReadOnlyList<float> TokenLogprobs,
    IReadOnlyList<Dictionary<string, float>> TopLogprobs,
    IReadOnlyList<int> TextOffset);
