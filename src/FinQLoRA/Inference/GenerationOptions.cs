namespace FinQLoRA.Inference;

/// <summary>Decoding settings. Greedy unless <see cref="Temperature"/> &gt; 0.</summary>
public sealed record GenerationOptions : ISamplingSettings
{
    public int MaxNewTokens { get; init; } = 64;
    /// <summary>0 means greedy (argmax); at most 2, the engine's (and OpenAI's) range.</summary>
    public double Temperature { get; init; }
    /// <summary>Keep only the k most likely tokens (0 = off).</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of tokens whose probability reaches p (1 = off).</summary>
    public double TopP { get; init; } = 1.0;
    public long Seed { get; init; } = 42;
    /// <summary>Extra stop ids on top of the tokenizer's EOS ids.</summary>
    public IReadOnlyList<int> StopIds { get; init; } = [];
    /// <summary>Generation of a sequence stops when its text contains one of these; the text is cut before it.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    public bool AddBos { get; init; } = true;

    public bool Greedy => Temperature <= 0;

    public void Validate()
    {
        if (MaxNewTokens < 1) throw UserInputException.About($"{new ConfigField("max_new_tokens")} must be at least 1 (got {MaxNewTokens})");
        // written so that NaN fails too (every comparison with NaN is false)
        if (!(Temperature >= 0 && Temperature <= 2)) throw UserInputException.About($"{new ConfigField("temperature")} must be in [0, 2] (got {Temperature}); 0 is greedy");
        if (!(TopP > 0 && TopP <= 1)) throw UserInputException.About($"{new ConfigField("top_p")} must be in (0, 1] (got {TopP})");
        if (TopK < 0) throw UserInputException.About($"{new ConfigField("top_k")} must be >= 0 (got {TopK})");
    }

    /// <summary>Checks that every prompt is non-empty and leaves room for <see cref="MaxNewTokens"/> in a context of
    /// <paramref name="context"/> positions.</summary>
    public void CheckPrompts(IReadOnlyList<int[]> prompts, int context)
    {
        for (int i = 0; i < prompts.Count; i++)
        {
            if (prompts[i].Length == 0) throw new UserInputException($"prompt {i} is empty after tokenization");
            if (prompts[i].Length + MaxNewTokens > context)
                throw UserInputException.About($"prompt {i} has {prompts[i].Length} tokens; with {new ConfigField("max_new_tokens")} {MaxNewTokens} that exceeds the model's context of {context} (max_position_embeddings); shorten the prompt or lower {new ConfigField("max_new_tokens")}");
        }
    }
}
