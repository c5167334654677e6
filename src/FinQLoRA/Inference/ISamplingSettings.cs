namespace FinQLoRA.Inference;

/// <summary>What <see cref="TokenSampler"/> reads: generate's <see cref="GenerationOptions"/> and the server's
/// per-request sampling settings both carry these, so each hands its own record over as it is.</summary>
public interface ISamplingSettings
{
    /// <summary>0 means greedy (argmax).</summary>
    double Temperature { get; }
    /// <summary>Keep only the k most likely tokens (0 = off).</summary>
    int TopK { get; }
    /// <summary>Keep the smallest set of tokens whose probability reaches p (1 = off).</summary>
    double TopP { get; }
    long Seed { get; }
    bool Greedy => Temperature <= 0;
}
