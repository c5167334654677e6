namespace FinQLoRA.Quantization;

/// <summary>The storage format of a <see cref="QuantizedTensor"/>.</summary>
public enum QuantizedFormat
{
    /// <summary>bitsandbytes 4-bit NormalFloat, blockwise absmax.</summary>
    Nf4,
    /// <summary>bitsandbytes 4-bit float (e2m1), blockwise absmax.</summary>
    Fp4,
    /// <summary>LLM.int8(): int8 per output row with an fp32 absmax (SCB) per row.</summary>
    Int8,
}
