namespace FinQLoRA.Recipes;

/// <summary>What <c>finqlora export-adapter</c> does: write the PEFT adapter <see cref="AdapterDir"/> as a llama.cpp
/// LoRA adapter file (<see cref="To"/> <c>gguf</c>, the one target).</summary>
public sealed record AdapterExportOptions : RecipeOutput
{
    public required string AdapterDir { get; init; }
    public string To { get; init; } = "gguf";
    /// <summary>The base model (HF folder or .gguf); needed when the adapter touches q_proj/k_proj, whose rows
    /// llama.cpp permutes.</summary>
    public string? BasePath { get; init; }
}
