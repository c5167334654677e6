using System.Text.Json.Serialization;

namespace FinQLoRA.Server.Common;

// The wire objects every endpoint family shares, field for field as OpenAI's API reference names them.

/// <summary>OpenAI's error body: <c>{"error": {"message", "type", "param", "code"}}</c>; param and code are written as
/// null when absent, as OpenAI does.</summary>
internal sealed record ErrorResponse([property: JsonPropertyName("error")] ErrorInfo Error);

internal sealed record ErrorInfo(
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("param")] string? Param,
    [property: JsonPropertyName("code")] string? Code);

/// <summary>Token counts of a response (completions and chat alike).</summary>
internal sealed record UsageInfo(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens)
{
    public static UsageInfo Of(int prompt, int completion) => new(prompt, completion, prompt + completion);
}

/// <summary>A streamed chunk whose <c>usage</c> OpenAI writes as null on every chunk when the client asked for usage
/// (<c>stream_options.include_usage</c>) and leaves out otherwise; <see cref="OpenAiJson"/> honours this.</summary>
internal interface IStreamChunk
{
    bool WritesNullUsage { get; }
}
