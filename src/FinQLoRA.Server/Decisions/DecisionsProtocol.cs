using System.Text.Json;
using System.Text.Json.Serialization;

namespace FinQLoRA.Server.Decisions;

// POST /v1/decisions, field for field as OpenAI's Decisions API (public beta) names them. The input and the questions
// bind as JSON and are read by DecisionsRequestReader, which names the exact field at fault
// (questions[2].choices[0].value); other fields are ignored, as elsewhere.

internal sealed record DecisionsRequest
{
    public string? Model { get; init; }
    /// <summary>A string, or a list of messages (<c>{role, content}</c>, content a string or <c>input_text</c> parts).</summary>
    public JsonElement? Input { get; init; }
    public JsonElement? Questions { get; init; }
    public string? PromptCacheKey { get; init; }
    /// <summary>vLLM's request priority (lower first; see <see cref="Common.PriorityField"/>).</summary>
    public long? Priority { get; init; }
    /// <summary>OpenAI's end-user identifier for abuse monitoring; accepted and not used.</summary>
    public string? SafetyIdentifier { get; init; }
}

internal sealed record DecisionsResponse(string Model, IReadOnlyList<DecisionAnswerObject> Answers, DecisionUsage Usage);

/// <summary>One answer, tagged with its <c>type</c> (written first); <c>name</c> is null for a question without one.</summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type")]
[JsonDerivedType(typeof(PredicateAnswerObject), "predicate")]
[JsonDerivedType(typeof(ChoiceAnswerObject), "choice")]
[JsonDerivedType(typeof(ScoreAnswerObject), "score")]
[JsonDerivedType(typeof(RefusalAnswerObject), "refusal")]
internal abstract record DecisionAnswerObject(string? Name);

internal sealed record PredicateAnswerObject(string? Name, double Probability) : DecisionAnswerObject(Name);

/// <summary><c>choice</c> and each probability's <c>value</c> keep the request's JSON type (string or boolean).</summary>
internal sealed record ChoiceAnswerObject(string? Name, JsonElement Choice, double Confidence, IReadOnlyList<ChoiceProbabilityObject> Probabilities)
    : DecisionAnswerObject(Name);

internal sealed record ChoiceProbabilityObject(JsonElement Value, double Probability);

internal sealed record ScoreAnswerObject(string? Name, double Score, double Confidence, IReadOnlyList<ScoreProbabilityObject> Probabilities)
    : DecisionAnswerObject(Name);

/// <summary>A level's probability; <c>value</c> is the level's zero-based index.</summary>
internal sealed record ScoreProbabilityObject(string Label, int Value, double Probability);

internal sealed record RefusalAnswerObject(string? Name) : DecisionAnswerObject(Name);

/// <summary>Nothing is generated: <c>output_tokens</c> is 0.</summary>
internal sealed record DecisionUsage(int InputTokens, DecisionInputTokensDetails InputTokensDetails, int OutputTokens,
    DecisionOutputTokensDetails OutputTokensDetails, int TotalTokens);

internal sealed record DecisionInputTokensDetails(int CachedTokens);

internal sealed record DecisionOutputTokensDetails(int ReasoningTokens);
