using FinQLoRA.Inference;
using FinQLoRA.Inference.Constraints;

namespace FinQLoRA.Serving;

/// <summary>How one request is decoded. Greedy unless <see cref="Temperature"/> &gt; 0; a sampled request draws from
/// its own generator seeded with <see cref="Seed"/>, so its tokens do not depend on what else is in the batch.</summary>
public sealed record SamplingParams : ISamplingSettings
{
    public int MaxTokens { get; init; } = 16;
    public double Temperature { get; init; }
    public double TopP { get; init; } = 1.0;
    public int TopK { get; init; }
    public long Seed { get; init; }
    /// <summary>Generation stops when the text contains one of these; the text is cut before it.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>Token ids that end generation besides the tokenizer's EOS ids (e.g. a chat format's end of turn).</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    /// <summary>How many most likely alternatives to report per generated token; null reports no log probabilities.</summary>
    public int? Logprobs { get; init; }
    /// <summary>Structured output: only tokens that keep the text a prefix of a match are drawn, end tokens only where
    /// it is a whole match, and the row stops (<c>stop</c>) as soon as nothing more can follow. Null: free text.
    /// Compiled for the engine's tokenizer (<see cref="ConstraintCache.For"/>).</summary>
    public CompiledConstraint? Constraint { get; init; }
}
