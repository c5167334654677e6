using System.Text.Json;

namespace FinQLoRA.Server.Common;

/// <summary>The request fields completions and chat completions share, as OpenAI names them; each endpoint's record
/// adds its own. Integers bind as long so that a value out of range is reported with its range.</summary>
internal abstract record SamplingRequest
{
    public string? Model { get; init; }
    /// <summary>The prefix-cache partition (OpenAI's field); see <see cref="CachePartition"/>.</summary>
    public string? PromptCacheKey { get; init; }
    /// <summary>vLLM's request priority (lower first; see <see cref="PriorityField"/>).</summary>
    public long? Priority { get; init; }
    public long? N { get; init; }
    /// <summary>The completion's token limit (chat's older name of <c>max_completion_tokens</c>).</summary>
    public long? MaxTokens { get; init; }
    public bool? Stream { get; init; }
    public JsonElement? StreamOptions { get; init; }
    public double? Temperature { get; init; }
    public double? TopP { get; init; }
    /// <summary>vLLM's extension; 0 = off.</summary>
    public long? TopK { get; init; }
    public long? Seed { get; init; }
    /// <summary>A string or a list of strings.</summary>
    public JsonElement? Stop { get; init; }
    /// <summary>Accepted only empty.</summary>
    public JsonElement? LogitBias { get; init; }
    /// <summary>Accepted only as 0.</summary>
    public JsonElement? PresencePenalty { get; init; }
    /// <summary>Accepted only as 0.</summary>
    public JsonElement? FrequencyPenalty { get; init; }
    /// <summary>vLLM's structured outputs: one of <c>choice</c>, <c>regex</c>, <c>json</c> (<see cref="StructuredOutputs"/>).</summary>
    public JsonElement? StructuredOutputs { get; init; }
}
