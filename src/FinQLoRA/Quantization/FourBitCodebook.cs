namespace FinQLoRA.Quantization;

/// <summary>
/// The 4-bit code tables of bitsandbytes and the exact nearest-code rules of its CUDA kernels
/// (<c>dQuantizeNF4</c> / <c>dQuantizeFP4</c> in csrc/kernels.cu). The comparison constants are the kernels'
/// float literals, so a value lands in the same code as on a GPU, ties included.
/// </summary>
public static class FourBitCodebook
{
    /// <summary>NF4 values by code (<c>get_4bit_type("nf4")</c> = <c>nf4_dequantization_lut</c>).</summary>
    public static ReadOnlySpan<float> Nf4 =>
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    /// <summary>
    /// The 15 NF4 decision points in ascending order, as the float literals of <c>dQuantizeNF4</c>.
    /// code(x) = number of points p with x &gt; p (strict), so a value exactly on a point takes the lower code.
    /// </summary>
    public static ReadOnlySpan<float> Nf4Midpoints =>
    [
        -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
        -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
        0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
        0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f,
    ];

    /// <summary>
    /// FP4 values by code: <c>get_4bit_type("fp4")</c> is [0, 0.0625, 8, 12, 4, 6, 2, 3] and the same negated,
    /// divided by 12 in float32 (bit 3 is the sign, so code 8 is -0.0).
    /// </summary>
    public static ReadOnlySpan<float> Fp4 =>
    [
        0f / 12f, 0.0625f / 12f, 8f / 12f, 12f / 12f, 4f / 12f, 6f / 12f, 2f / 12f, 3f / 12f,
        -0f / 12f, -0.0625f / 12f, -8f / 12f, -12f / 12f, -4f / 12f, -6f / 12f, -2f / 12f, -3f / 12f,
    ];

    /// <summary>The 7 thresholds on |x| of <c>dQuantizeFP4</c> (float literals as in the kernel), ascending.</summary>
    public static ReadOnlySpan<float> Fp4Thresholds =>
        [0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f];

    /// <summary>FP4 code of the magnitude rank r (number of thresholds |x| exceeds): the codes of the sorted magnitudes
    /// 0, 1/192, 1/6, 1/4, 1/3, 1/2, 2/3, 1.</summary>
    public static ReadOnlySpan<byte> Fp4CodeByRank => [0, 1, 6, 7, 4, 5, 2, 3];

    /// <summary>The value table of a type.</summary>
    public static ReadOnlySpan<float> Values(FourBitType type) => type == FourBitType.Nf4 ? Nf4 : Fp4;

    /// <summary>NF4 code of a value already normalised to [-1, 1]; NaN gives code 0 as on CUDA (all comparisons false).</summary>
    public static byte EncodeNf4(float x)
    {
        ReadOnlySpan<float> m = Nf4Midpoints;
        int code = 0;
        for (int i = 0; i < m.Length; i++)
            if (x > m[i]) code++;
        return (byte)code;
    }

    /// <summary>FP4 code of a normalised value: sign bit 8 when x &lt; 0 (so -0.0 and NaN are positive), then the magnitude rank.</summary>
    public static byte EncodeFp4(float x)
    {
        int sign = x < 0 ? 0b1000 : 0;
        float a = MathF.Abs(x);
        ReadOnlySpan<float> t = Fp4Thresholds;
        int rank = 0;
        for (int i = 0; i < t.Length; i++)
            if (a > t[i]) rank++;
        return (byte)(Fp4CodeByRank[rank] + sign);
    }

    public static byte Encode(FourBitType type, float x) => type == FourBitType.Nf4 ? EncodeNf4(x) : EncodeFp4(x);
}
