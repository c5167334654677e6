using FinQLoRA.Data.Chat;

namespace FinQLoRA.Serving.Decisions;

/// <summary>A decision request for the engine: the shared input (a text is one user message), the questions (1 to
/// <see cref="MaxQuestions"/>), the adapter (null = the base) and the prefix-cache partition.</summary>
public sealed record DecisionRequest(IReadOnlyList<ChatTurn> Input, IReadOnlyList<DecisionQuestion> Questions)
{
    public const int MaxQuestions = 400;
    public const int MaxChoices = 255;

    public string? Adapter { get; init; }
    public string? CachePartition { get; init; }
    /// <summary>The scoring rows' <see cref="EngineRequest.Priority"/>.</summary>
    public int Priority { get; init; }
}

/// <summary>The answers in question order, and the tokens read: <see cref="InputTokens"/> counts the shared prompt
/// prefix once, each question's own prompt tokens and each option's label tokens; <see cref="CachedTokens"/> are
/// those of the shared prefix that an earlier request left in the prefix cache.</summary>
public sealed record DecisionResult(IReadOnlyList<DecisionAnswer> Answers, int InputTokens, int CachedTokens);
