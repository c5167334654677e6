using FinQLoRA.Inference;

namespace FinQLoRA.Serving;

/// <summary>
/// What one step produced for one request: the token id (null when it is the end-of-sequence token, which is counted
/// but not shown), its log probability and the top alternatives when asked for, the new text that is safe to show
/// (never half a UTF-8 character, never the start of a stop string that may still complete; may be empty),
/// and on the last event the finish reason (<see cref="Inference.FinishReason"/>: stop, with the stop id or string
/// that ended it, or length) and counts. <see cref="CachedTokens"/> are the prompt tokens read from the prefix cache
/// (set on the final event); a scoring row's one event carries <see cref="Score"/> and <see cref="Inference.FinishReason.Scored"/>.
/// </summary>
public sealed record EngineEvent(
    int? TokenId,
    TokenLogprob? Logprob,
    IReadOnlyList<TokenLogprob>? TopLogprobs,
    string TextDelta,
    FinishReason? FinishReason = null,
    int PromptTokens = 0,
    int CompletionTokens = 0)
{
    public bool IsFinal => FinishReason is not null;
    /// <summary>Prompt tokens whose keys and values came from the prefix cache instead of being computed.</summary>
    public int CachedTokens { get; init; }
    /// <summary>A scoring row's log-likelihood of its scored tokens (natural log); null on generation rows.</summary>
    public double? Score { get; init; }
    /// <summary>A scoring row's log-likelihood of each of its <see cref="EngineRequest.ScoreBranches"/> after its prompt.</summary>
    public IReadOnlyList<double>? BranchScores { get; init; }
}
