namespace FinQLoRA.Server.Common;

// The wire objects every endpoint family shares, field for field as OpenAI's API reference names them.

/// <summary>OpenAI's error body: <c>{"error": {"message", "type", "param", "code"}}</c>; param and code are written as
/// null when absent, as OpenAI does.</summary>
internal sealed record ErrorResponse(ErrorInfo Error);

internal sealed record ErrorInfo(string Message, string Type, string? Param, string? Code);

/// <summary>Token counts of a response (completions and chat alike).</summary>
internal sealed record UsageInfo(int PromptTokens, int CompletionTokens, int TotalTokens)
{
    public static UsageInfo Of(int prompt, int completion) => new(prompt, completion, prompt + completion);
}

/// <summary>A streamed chunk whose <c>usage</c> OpenAI writes as null on every chunk when the client asked for usage
/// (<c>stream_options.include_usage</c>) and leaves out otherwise; <see cref="OpenAiJson"/> honours this.</summary>
internal interface IStreamChunk
{
    bool WritesNullUsage { get; }
}
