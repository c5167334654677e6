using System.Text.Json;
using System.Text.Json.Serialization;
using FinQLoRA.Server.Common;

namespace FinQLoRA.Server.Completions;

// POST /v1/completions (OpenAI's legacy completions), field for field as OpenAI names them (the fields shared with
// /v1/chat/completions are SamplingRequest's). Fields this server reads only; others are ignored.

internal sealed record CompletionRequest : SamplingRequest
{
    /// <summary>A string, a list of strings, a list of token ids or a list of such lists.</summary>
    [JsonPropertyName("prompt")] public JsonElement? Prompt { get; init; }
    /// <summary>Accepted only equal to n.</summary>
    [JsonPropertyName("best_of")] public long? BestOf { get; init; }
    /// <summary>Accepted only empty.</summary>
    [JsonPropertyName("suffix")] public string? Suffix { get; init; }
    [JsonPropertyName("echo")] public bool? Echo { get; init; }
    /// <summary>How many alternatives per token to return (0-20); null returns no logprobs.</summary>
    [JsonPropertyName("logprobs")] public long? Logprobs { get; init; }
}

/// <summary>The response, and each streamed chunk (<c>object</c> is <c>text_completion</c> in both, as OpenAI sends it);
/// the last chunk of a stream that asked for usage has no choices and the usage.</summary>
internal sealed record CompletionResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] IReadOnlyList<CompletionChoice> Choices,
    [property: JsonPropertyName("usage")] UsageInfo? Usage) : IStreamChunk
{
    [JsonIgnore] public bool WritesNullUsage { get; init; }
}

internal sealed record CompletionChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("logprobs")] CompletionLogprobs? Logprobs,
    [property: JsonPropertyName("finish_reason")] string? FinishReason);

/// <summary>The legacy logprobs object: per token its text, log probability, alternatives (text → logprob) and the
/// offset of its text in the choice's text.</summary>
internal sealed record CompletionLogprobs(
    [property: JsonPropertyName("tokens")] IReadOnlyList<string> Tokens,
    [property: JsonPropertyName("token_logprobs")] IReadOnlyList<float> TokenLogprobs,
    [property: JsonPropertyName("top_logprobs")] IReadOnlyList<Dictionary<string, float>> TopLogprobs,
    [property: JsonPropertyName("text_offset")] IReadOnlyList<int> TextOffset);
