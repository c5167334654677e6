namespace FinQLoRA.Recipes;

/// <summary>What <c>finqlora export-adapter</c> does: write the PEFT adapter <see cref="AdapterDir"/> as a llama.cpp
/// LoRA adapter file (<see cref="To"/> <c>gguf</c>, the one target).</summary>
public sealed record AdapterExportOptions
{
    public required string AdapterDir { get; init; }
    public required string OutPath { get; init; }
    public string To { get; init; } = "gguf";
    /// <summary>The base model (HF folder or .gguf); needed when the adapter touches q_proj/k_proj, whose rows
    /// llama.cpp permutes.</summary>
    public string? BasePath { get; init; }
    /// <summary>Replace an existing output that FinQLoRA wrote (an input never is).</summary>
    public bool Overwrite { get; init; }
}
