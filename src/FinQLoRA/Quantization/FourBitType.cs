namespace FinQLoRA.Quantization;

/// <summary>The two 4-bit data types of bitsandbytes. The names are bitsandbytes' <c>quant_type</c> strings.</summary>
public enum FourBitType
{
    /// <summary>NormalFloat4: 16 quantiles of N(0,1) scaled to [-1, 1] (QLoRA §3). A lookup table, not a float encoding.</summary>
    Nf4,
    /// <summary>e2m1 with bitsandbytes' own value table (<c>create_fp8_map(True, 2, 1, 4)</c>, divided by 12).</summary>
    Fp4,
}
