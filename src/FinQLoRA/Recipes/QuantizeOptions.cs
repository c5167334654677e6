using FinQLoRA.Quantization;
using static TorchSharp.torch;

namespace FinQLoRA.Recipes;

/// <summary>What <c>finqlora quantize</c> does: write <see cref="ModelPath"/>'s projections as 4-bit (NF4/FP4) or
/// 8-bit (LLM.int8) weights into the HF folder <see cref="OutPath"/>, in bitsandbytes' layout.</summary>
public sealed record QuantizeOptions : RecipeOutput
{
    public required string ModelPath { get; init; }
    public int Bits { get; init; } = 4;
    public FourBitType Quant { get; init; } = FourBitType.Nf4;
    public bool DoubleQuant { get; init; } = true;
    /// <summary>dtype of embeddings, norms and lm_head; null keeps the model's torch_dtype.</summary>
    public ScalarType? DType { get; init; }
}
