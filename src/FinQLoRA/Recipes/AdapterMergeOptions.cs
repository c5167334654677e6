using FinQLoRA.Quantization;
using static TorchSharp.torch;

namespace FinQLoRA.Recipes;

/// <summary>What <c>finqlora merge</c> does: fold <see cref="AdapterDir"/> into the base at <see cref="ModelPath"/>
/// and write <see cref="OutPath"/> as an HF folder (<c>hf</c>) or a GGUF file (<c>gguf</c>).</summary>
public sealed record AdapterMergeOptions : RecipeOutput
{
    public required string ModelPath { get; init; }
    public required string AdapterDir { get; init; }
    /// <summary><c>hf</c> or <c>gguf</c>.</summary>
    public string To { get; init; } = "hf";
    /// <summary>dtype of the written weights (bf16, f16 or f32); the merge itself is computed in fp32.</summary>
    public ScalarType DType { get; init; } = ScalarType.BFloat16;
    /// <summary>Precision of the base the adapter was trained against: 4/8 merge onto the dequantized quantized base
    /// (what the adapter saw in training), 16 onto the checkpoint's weights.</summary>
    public WeightBits Bits { get; init; } = 16;
    public FourBitType Quant { get; init; } = FourBitType.Nf4;
    public bool DoubleQuant { get; init; } = true;
}
