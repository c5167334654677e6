using System.Text.Json;

namespace FinQLoRA.Server.Common;

/// <summary>The sampling fields completions and chat completions share (OpenAI's names, on both request records).</summary>
internal interface ISamplingRequest
{
    double? Temperature { get; }
    double? TopP { get; }
    /// <summary>vLLM's extension; 0 = off.</summary>
    long? TopK { get; }
    long? Seed { get; }
    /// <summary>A string or a list of strings.</summary>
    JsonElement? Stop { get; }
    /// <summary>Accepted only empty.</summary>
    JsonElement? LogitBias { get; }
    /// <summary>Accepted only as 0.</summary>
    JsonElement? PresencePenalty { get; }
    /// <summary>Accepted only as 0.</summary>
    JsonElement? FrequencyPenalty { get; }
}
