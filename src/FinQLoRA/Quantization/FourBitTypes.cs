using FinQLoRA.Options;

namespace FinQLoRA.Quantization;

/// <summary>The names of <see cref="FourBitType"/>: bitsandbytes' <c>quant_type</c> strings, which are also what the
/// quant option takes and what quant states, quantization_config and run records write.</summary>
public static class FourBitTypes
{
    public static NamedValues<FourBitType> Spellings { get; } = new((FourBitType.Nf4, ["nf4"]), (FourBitType.Fp4, ["fp4"]));
}
