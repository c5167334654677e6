using FinQLoRA.Formats.Gguf;

namespace FinQLoRA.Recipes;

/// <summary>What <c>finqlora convert</c> does: an HF folder to one .gguf file (<see cref="To"/> <c>gguf</c>) or a
/// .gguf file to an HF folder (<c>hf</c>).</summary>
public sealed record ConvertOptions : RecipeOutput
{
    public required string ModelPath { get; init; }
    /// <summary><c>hf</c> or <c>gguf</c>.</summary>
    public required string To { get; init; }
    /// <summary>Tensor type of the output (f32, f16, bf16; q8_0 for GGUF only); null keeps the stored types.</summary>
    public GgmlType? DType { get; init; }
}
