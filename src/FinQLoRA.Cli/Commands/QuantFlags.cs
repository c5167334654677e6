using FinQLoRA.Models;
using FinQLoRA.Options;
using FinQLoRA.Quantization;
using FinQLoRA.Loading;

namespace FinQLoRA.Cli.Commands;

/// <summary>The <c>--bits/--quant/--double-quant</c> flags that generate, serve and merge share, read by the library's parsers.</summary>
public static class QuantFlags
{
    /// <summary>The load options with the base quantized to <paramref name="bits"/> as it loads (16 = as stored).</summary>
    public static ModelLoadOptions Apply(ModelLoadOptions options, int bits, string quant, string doubleQuant) =>
        options.WithBits(WeightBits.Require(bits), FourBitTypes.Spellings.Parse(quant, "quant"), BoolText.Parse(doubleQuant, "double_quant"));
}
