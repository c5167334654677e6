using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace FinQLoRA.Quantization;

/// <summary>
/// fp32 → bf16 exactly as torch's <c>.to(torch.bfloat16)</c> (c10::BFloat16 <c>round_to_nearest_even</c>):
/// add 0x7FFF plus the lowest kept bit, keep the upper 16 bits. Overflow rounds to ±inf as in torch.
/// NaN becomes the canonical quiet NaN 0x7FC0 (torch's scalar path; its AVX-512 path writes 0xFFFF, also a NaN).
/// </summary>
internal static class BFloat16Rounding
{
    public const ushort CanonicalNaN = 0x7FC0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Round(float value)
    {
        if (float.IsNaN(value)) return CanonicalNaN;
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint bias = ((bits >> 16) & 1) + 0x7FFF;
        return (ushort)((bits + bias) >> 16);
    }

    /// <summary>The fp32 value of bf16 bits (exact: bf16 is fp32's upper half).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Widen(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>16 lanes; each result lane holds the bf16 bits in its low half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<uint> Round(Vector512<float> value)
    {
        Vector512<uint> bits = value.AsUInt32();
        Vector512<uint> bias = ((bits >>> 16) & Vector512<uint>.One) + Vector512.Create(0x7FFFu);
        Vector512<uint> rounded = (bits + bias) >>> 16;
        Vector512<uint> isNumber = Vector512.Equals(value, value).AsUInt32();
        return Vector512.ConditionalSelect(isNumber, rounded, Vector512.Create((uint)CanonicalNaN));
    }

    /// <summary>8 lanes; each result lane holds the bf16 bits in its low half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<uint> Round(Vector256<float> value)
    {
        Vector256<uint> bits = value.AsUInt32();
        Vector256<uint> bias = ((bits >>> 16) & Vector256<uint>.One) + Vector256.Create(0x7FFFu);
        Vector256<uint> rounded = (bits + bias) >>> 16;
        Vector256<uint> isNumber = Vector256.Equals(value, value).AsUInt32();
        return Vector256.ConditionalSelect(isNumber, rounded, Vector256.Create((uint)CanonicalNaN));
    }
}
