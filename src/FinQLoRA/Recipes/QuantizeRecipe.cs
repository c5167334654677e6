using FinQLoRA.Quantization;

namespace FinQLoRA.Recipes;

/// <summary><c>finqlora quantize</c>: the checkpoint quantized tensor by tensor (<see cref="CheckpointQuantizer"/>,
/// which checks the output placement before it reads a tensor), and how the result reads.</summary>
public static class QuantizeRecipe
{
    public static QuantizeSummary Run(QuantizeOptions o) =>
        CheckpointQuantizer.Run(o.ModelPath, o.OutPath, new QuantizationOptions(Bits: o.Bits, Kind: o.Quant, DoubleQuant: o.DoubleQuant), o.DType, o.Overwrite);

    /// <summary>The kind of quantization in words: <c>nf4, double quant</c>, <c>fp4</c> or <c>LLM.int8</c>.</summary>
    public static string Describe(QuantizeOptions o) =>
        o.Bits == 4 ? $"{FourBitTypes.Spellings.Name(o.Quant)}{(o.DoubleQuant ? ", double quant" : "")}" : "LLM.int8";
}
