namespace FinQLoRA.Serving;

/// <summary>
/// What one step produced for one request: the token id (null when it is the end-of-sequence token, which is counted
/// but not shown), its log probability and the top alternatives when asked for, the new text that is safe to show
/// (never half a UTF-8 character, never the start of a stop string that may still complete; may be empty),
/// and on the last event the finish reason (<c>stop</c> or <c>length</c>) and counts.
/// </summary>
public sealed record EngineEvent(
    int? TokenId,
    TokenLogprob? Logprob,
    IReadOnlyList<TokenLogprob>? TopLogprobs,
    string TextDelta,
    string? FinishReason = null,
    int PromptTokens = 0,
    int CompletionTokens = 0)
{
    public bool IsFinal => FinishReason is not null;
}
