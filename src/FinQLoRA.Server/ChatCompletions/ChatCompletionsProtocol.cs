using System.Text.Json;
using System.Text.Json.Serialization;
using FinQLoRA.Server.Common;

namespace FinQLoRA.Server.ChatCompletions;

// POST /v1/chat/completions, field for field as OpenAI names them (the fields shared with /v1/completions are
// SamplingRequest's). Fields this server reads only; others are ignored.

internal sealed record ChatCompletionRequest : SamplingRequest
{
    public IReadOnlyList<ChatMessageParam?>? Messages { get; init; }
    /// <summary>Accepted only empty.</summary>
    public JsonElement? Tools { get; init; }
    /// <summary><c>{"type": "text" | "json_object" | "json_schema", "json_schema": {name, schema, strict}}</c>.</summary>
    public JsonElement? ResponseFormat { get; init; }
    public bool? Logprobs { get; init; }
    public long? TopLogprobs { get; init; }
    public long? MaxCompletionTokens { get; init; }
}

/// <summary>One input message: role (system, developer, user, assistant) and content, a string or a list of text parts
/// (<c>{"type": "text", "text": ...}</c>).</summary>
internal sealed record ChatMessageParam(string? Role, JsonElement? Content);

/// <summary>A <c>chat.completion</c> (<typeparamref name="TChoice"/> <see cref="ChatChoice"/>) or a streamed
/// <c>chat.completion.chunk</c> (<see cref="ChatChunkChoice"/>): OpenAI gives both the same fields. In a stream the first
/// chunk of a choice carries the role, later ones the new text, the last one the finish reason with an empty delta; a
/// stream that asked for usage ends with a chunk without choices that carries it.</summary>
internal sealed record ChatCompletionObject<TChoice>(
    string Id,
    string Object,
    long Created,
    string Model,
    string? SystemFingerprint,
    IReadOnlyList<TChoice> Choices,
    UsageInfo? Usage) : IStreamChunk
{
    /// <summary>Set on the chunks of a stream that asked for usage; a whole response always carries its usage.</summary>
    [JsonIgnore] public bool WritesNullUsage { get; init; }
}

internal sealed record ChatChoice(int Index, ChatResponseMessage Message, ChatLogprobs? Logprobs, string? FinishReason);

internal sealed record ChatResponseMessage(string Role, string? Content);

internal sealed record ChatLogprobs(IReadOnlyList<ChatTokenLogprob> Content);

internal sealed record ChatTokenLogprob(
    string Token,
    float Logprob,
    IReadOnlyList<int>? Bytes,
    IReadOnlyList<ChatTopLogprob> TopLogprobs);

internal sealed record ChatTopLogprob(string Token, float Logprob, IReadOnlyList<int>? Bytes);

internal sealed record ChatChunkChoice(int Index, ChatDelta Delta, ChatLogprobs? Logprobs, string? FinishReason);

/// <summary>What a chunk adds to the message; absent fields are left out (the last chunk's delta is <c>{}</c>).</summary>
internal sealed record ChatDelta(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Content);
