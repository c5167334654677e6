namespace FinQLoRA.Quantization;

/// <summary>
/// How to quantize a linear weight, with bitsandbytes' defaults for QLoRA (NF4, double quantization, blocks of 64)
/// and for LLM.int8() (outlier threshold 6.0, as Hugging Face's <c>load_in_8bit</c> uses).
/// </summary>
/// <param name="Bits">16 (no quantization), 8 (LLM.int8 row-wise) or 4 (blockwise NF4/FP4).</param>
/// <param name="Kind">The 4-bit data type; ignored for other widths.</param>
/// <param name="DoubleQuant">Quantize the 4-bit block scales again to 8 bits (256-blocks), 4.127 instead of 4.5 bits/param.</param>
/// <param name="BlockSize">Elements per 4-bit block (bitsandbytes allows 32..4096, powers of two; 64 is the default).</param>
/// <param name="Int8Threshold">LLM.int8() activation outlier threshold; 0 disables the outlier decomposition.</param>
public sealed record QuantizationOptions(
    int Bits = 4,
    FourBitType Kind = FourBitType.Nf4,
    bool DoubleQuant = true,
    int BlockSize = 64,
    double Int8Threshold = 6.0)
{
    /// <summary>QLoRA's setting: NF4 with double quantization, blocks of 64.</summary>
    public static QuantizationOptions Nf4 { get; } = new();

    /// <summary>LLM.int8() as Hugging Face's <c>load_in_8bit</c> sets it up.</summary>
    public static QuantizationOptions Int8 { get; } = new(Bits: 8);

    /// <summary>The nested (double-quantization) block size; fixed at 256 by bitsandbytes.</summary>
    public const int NestedBlockSize = 256;

    /// <summary>Throws <see cref="UserInputException"/> when a field is out of range.</summary>
    public QuantizationOptions Validate()
    {
        WeightBits.Require(Bits);
        if (Bits == 4 && (BlockSize < 32 || BlockSize > 4096 || (BlockSize & (BlockSize - 1)) != 0))
            throw new UserInputException($"quantization block size: {BlockSize} is not supported; use a power of two from 32 to 4096 (bitsandbytes' default is 64)");
        if (Int8Threshold < 0 || double.IsNaN(Int8Threshold))
            throw new UserInputException($"llm_int8_threshold: {Int8Threshold} must be >= 0 (6.0 is the LLM.int8() default, 0 disables outliers)");
        return this;
    }
}
