using System.Text.Json;
using System.Text.Json.Serialization;
using FinQLoRA.Server.Common;

namespace FinQLoRA.Server.ChatCompletions;

// POST /v1/chat/completions, field for field as OpenAI names them (the fields shared with /v1/completions are
// SamplingRequest's). Fields this server reads only; others are ignored.

internal sealed record ChatCompletionRequest : SamplingRequest
{
    [JsonPropertyName("messages")] public IReadOnlyList<ChatMessageParam?>? Messages { get; init; }
    /// <summary>Accepted only empty.</summary>
    [JsonPropertyName("tools")] public JsonElement? Tools { get; init; }
    /// <summary>Accepted only as <c>{"type": "text"}</c>.</summary>
    [JsonPropertyName("response_format")] public JsonElement? ResponseFormat { get; init; }
    [JsonPropertyName("logprobs")] public bool? Logprobs { get; init; }
    [JsonPropertyName("top_logprobs")] public long? TopLogprobs { get; init; }
    [JsonPropertyName("max_completion_tokens")] public long? MaxCompletionTokens { get; init; }
}

/// <summary>One input message: role (system, developer, user, assistant) and content, a string or a list of text parts
/// (<c>{"type": "text", "text": ...}</c>).</summary>
internal sealed record ChatMessageParam(
    [property: JsonPropertyName("role")] string? Role,
    [property: JsonPropertyName("content")] JsonElement? Content);

/// <summary>A <c>chat.completion</c> (<typeparamref name="TChoice"/> <see cref="ChatChoice"/>) or a streamed
/// <c>chat.completion.chunk</c> (<see cref="ChatChunkChoice"/>): OpenAI gives both the same fields. In a stream the first
/// chunk of a choice carries the role, later ones the new text, the last one the finish reason with an empty delta; a
/// stream that asked for usage ends with a chunk without choices that carries it.</summary>
internal sealed record ChatCompletionObject<TChoice>(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("system_fingerprint")] string? SystemFingerprint,
    [property: JsonPropertyName("choices")] IReadOnlyList<TChoice> Choices,
    [property: JsonPropertyName("usage")] UsageInfo? Usage) : IStreamChunk
{
    /// <summary>Set on the chunks of a stream that asked for usage; a whole response always carries its usage.</summary>
    [JsonIgnore] public bool WritesNullUsage { get; init; }
}

internal sealed record ChatChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("message")] ChatResponseMessage Message,
    [property: JsonPropertyName("logprobs")] ChatLogprobs? Logprobs,
    [property: JsonPropertyName("finish_reason")] string? FinishReason);

internal sealed record ChatResponseMessage(
    [property: JsonPropertyName("role")] string Role,
    [property: JsonPropertyName("content")] string? Content);

internal sealed record ChatLogprobs([property: JsonPropertyName("content")] IReadOnlyList<ChatTokenLogprob> Content);

internal sealed record ChatTokenLogprob(
    [property: JsonPropertyName("token")] string Token,
    [property: JsonPropertyName("logprob")] float Logprob,
    [property: JsonPropertyName("bytes")] IReadOnlyList<int>? Bytes,
    [property: JsonPropertyName("top_logprobs")] IReadOnlyList<ChatTopLogprob> TopLogprobs);

internal sealed record ChatTopLogprob(
    [property: JsonPropertyName("token")] string Token,
    [property: JsonPropertyName("logprob")] float Logprob,
    [property: JsonPropertyName("bytes")] IReadOnlyList<int>? Bytes);

internal sealed record ChatChunkChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("delta")] ChatDelta Delta,
    [property: JsonPropertyName("logprobs")] ChatLogprobs? Logprobs,
    [property: JsonPropertyName("finish_reason")] string? FinishReason);

/// <summary>What a chunk adds to the message; absent fields are left out (the last chunk's delta is <c>{}</c>).</summary>
internal sealed record ChatDelta(
    [property: JsonPropertyName("role"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role,
    [property: JsonPropertyName("content"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Content);
