namespace FinQLoRA.Server.Common;

// The wire objects every endpoint family shares, field for field as OpenAI's API reference names them.

/// <summary>OpenAI's error body: <c>{"error": {"message", "type", "param", "code"}}</c>; param and code are written as
/// null when absent, as OpenAI does.</summary>
internal sealed record ErrorResponse(ErrorInfo Error);

internal sealed record ErrorInfo(string Message, string Type, string? Param, string? Code);

/// <summary>Token counts of a response (completions and chat alike); <c>prompt_tokens_details.cached_tokens</c> is
/// always written, as OpenAI does.</summary>
internal sealed record UsageInfo(int PromptTokens, int CompletionTokens, int TotalTokens)
{
    private static readonly PromptTokensDetails None = new(0);
    private readonly PromptTokensDetails _details = None;

    /// <summary>Never null: a usage read without it (OpenAI's older samples; the reader sets it null) has none cached.</summary>
    public PromptTokensDetails PromptTokensDetails { get => _details; init => _details = value ?? None; }

    public static UsageInfo Of(int prompt, int completion, int cached) =>
        new(prompt, completion, prompt + completion) { PromptTokensDetails = new PromptTokensDetails(cached) };
}

/// <summary>The prompt tokens whose keys and values came from the prefix cache.</summary>
internal sealed record PromptTokensDetails(int CachedTokens);

/// <summary>A streamed chunk whose <c>usage</c> OpenAI writes as null on every chunk when the client asked for usage
/// (<c>stream_options.include_usage</c>) and leaves out otherwise; <see cref="OpenAiJson"/> honours this.</summary>
internal interface IStreamChunk
{
    bool WritesNullUsage { get; }
}
