using static TorchSharp.torch;

namespace FinQLoRA.Tests.Inference.Decoding;

/// <summary>Distances between tensors of bf16 values (bf16, or fp32 holding bf16 values) counted in bf16 ulps: each
/// value's 16 bits mapped to an integer line on which neighbouring bf16 values are one apart (−0 and +0 both 0).</summary>
internal static class Bf16Ulps
{
    /// <summary>The largest distance between corresponding values.</summary>
    public static int Max(Tensor expected, Tensor actual)
    {
        var (e, a) = (Line(expected), Line(actual));
        Assert.Equal(e.Length, a.Length);
        int max = 0;
        for (int i = 0; i < e.Length; i++) max = Math.Max(max, Math.Abs(e[i] - a[i]));
        return max;
    }

    /// <summary>The largest difference in ulps of the expected tensor's (or <paramref name="scaleOf"/>'s) largest magnitude (a bf16 value's ulp is
    /// 2^(exponent − 7)): differences near zero count by the tensor's scale, not by their own tiny ulp.</summary>
    public static double MaxOfScale(Tensor expected, Tensor actual, Tensor? scaleOf = null)
    {
        using var scope = NewDisposeScope();
        var e = expected.to(ScalarType.Float32);
        double largest = (scaleOf ?? expected).to(ScalarType.Float32).abs().max().item<float>();
        double ulp = largest == 0 ? float.Epsilon : Math.Pow(2, Math.Floor(Math.Log2(largest)) - 7);
        return (e - actual.to(ScalarType.Float32)).abs().max().item<float>() / ulp;
    }

    /// <summary>How many corresponding values are equal.</summary>
    public static long Equal(Tensor expected, Tensor actual)
    {
        var (e, a) = (Line(expected), Line(actual));
        return e.Zip(a).LongCount(p => p.First == p.Second);
    }

    private static int[] Line(Tensor t)
    {
        using var scope = NewDisposeScope();
        return [.. t.to(ScalarType.Float32).contiguous().data<float>().ToArray().Select(v =>
        {
            int bits = (int)(BitConverter.SingleToUInt32Bits(v) >> 16);
            return (bits & 0x8000) != 0 ? -(bits & 0x7FFF) : bits;
        })];
    }
}
