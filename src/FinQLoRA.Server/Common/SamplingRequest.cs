using System.Text.Json;
using System.Text.Json.Serialization;

namespace FinQLoRA.Server.Common;

/// <summary>The request fields completions and chat completions share, as OpenAI names them; each endpoint's record
/// adds its own. Integers bind as long so that a value out of range is reported with its range.</summary>
internal abstract record SamplingRequest
{
    [JsonPropertyName("model")] public string? Model { get; init; }
    [JsonPropertyName("n")] public long? N { get; init; }
    /// <summary>The completion's token limit (chat's older name of <c>max_completion_tokens</c>).</summary>
    [JsonPropertyName("max_tokens")] public long? MaxTokens { get; init; }
    [JsonPropertyName("stream")] public bool? Stream { get; init; }
    [JsonPropertyName("stream_options")] public JsonElement? StreamOptions { get; init; }
    [JsonPropertyName("temperature")] public double? Temperature { get; init; }
    [JsonPropertyName("top_p")] public double? TopP { get; init; }
    /// <summary>vLLM's extension; 0 = off.</summary>
    [JsonPropertyName("top_k")] public long? TopK { get; init; }
    [JsonPropertyName("seed")] public long? Seed { get; init; }
    /// <summary>A string or a list of strings.</summary>
    [JsonPropertyName("stop")] public JsonElement? Stop { get; init; }
    /// <summary>Accepted only empty.</summary>
    [JsonPropertyName("logit_bias")] public JsonElement? LogitBias { get; init; }
    /// <summary>Accepted only as 0.</summary>
    [JsonPropertyName("presence_penalty")] public JsonElement? PresencePenalty { get; init; }
    /// <summary>Accepted only as 0.</summary>
    [JsonPropertyName("frequency_penalty")] public JsonElement? FrequencyPenalty { get; init; }
}
