using FinQLoRA.Runtime;
using Xunit.Sdk;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Support;

/// <summary>
/// Tensor comparisons for every test: <c>allclose</c>, a bound on the largest |actual − expected|, value equality and
/// bit identity, each as an assertion that says by how much it failed: the largest difference, where it is and both
/// values there (a bare boolean check of <c>x.allclose(y)</c> only says "False"). The tolerances stay at the call site.
/// </summary>
public static class TensorAssert
{
    /// <summary>Passes when |actual − expected| ≤ atol + rtol·|expected| everywhere, as torch.allclose.</summary>
    public static void Close(Tensor expected, Tensor actual, double rtol = 1e-5, double atol = 1e-8)
    {
        if (!expected.shape.SequenceEqual(actual.shape))
            throw new XunitException($"{nameof(Close)}: shapes differ, expected [{string.Join(", ", expected.shape)}], actual [{string.Join(", ", actual.shape)}]");
        if (!actual.allclose(expected, rtol, atol)) throw new XunitException($"{nameof(Close)} failed (rtol {rtol}, atol {atol}): {Describe(expected, actual)}");
    }

    /// <summary>Passes when the tensors are not allclose (same shape), e.g. to show that a change did change the output.</summary>
    public static void NotClose(Tensor expected, Tensor actual, double rtol = 1e-5, double atol = 1e-8)
    {
        if (expected.shape.SequenceEqual(actual.shape) && actual.allclose(expected, rtol, atol))
            throw new XunitException($"{nameof(NotClose)} failed (rtol {rtol}, atol {atol}): the tensors agree, {Describe(expected, actual)}");
    }

    /// <summary>Passes when max |actual − expected| ≤ <paramref name="allowed"/> (an absolute bound the caller scales).</summary>
    public static void MaxDiffAtMost(Tensor expected, Tensor actual, double allowed, string what = "")
    {
        double diff = MaxDiff(expected, actual);
        if (!(diff <= allowed)) throw new XunitException($"{what}: max |diff| {diff:G6} above {allowed:G6} (max |expected| {MaxAbs(expected):G6}); {Describe(expected, actual)}");
    }

    /// <summary>Passes when max |actual − expected| &lt; <paramref name="bound"/> (strictly).</summary>
    public static void MaxDiffBelow(Tensor expected, Tensor actual, double bound, string what = "")
    {
        double diff = MaxDiff(expected, actual);
        if (!(diff < bound)) throw new XunitException($"{what}: max |diff| {diff:G6} not below {bound:G6}; {Describe(expected, actual)}");
    }

    /// <summary>Passes when every element is equal in value (torch <c>eq</c>: 0 equals −0, NaN equals nothing).</summary>
    public static void Equal(Tensor expected, Tensor actual, string what = "")
    {
        if (!expected.shape.SequenceEqual(actual.shape))
            throw new XunitException($"{what}: shapes differ, expected [{string.Join(", ", expected.shape)}], actual [{string.Join(", ", actual.shape)}]");
        using var same = expected.eq(actual).all();
        if (!same.item<bool>()) throw new XunitException($"{what}: the tensors differ, {Describe(expected, actual)}");
    }

    /// <summary>Passes when dtype, shape and every byte agree (tells −0 from 0, unlike <see cref="Equal"/>).</summary>
    public static void BitIdentical(Tensor expected, Tensor actual, string what = "")
    {
        if (!AreBitIdentical(expected, actual)) throw new XunitException($"{what}: not bit-identical ({expected.dtype} [{string.Join(", ", expected.shape)}] vs {actual.dtype} [{string.Join(", ", actual.shape)}]); {DescribeIfComparable(expected, actual)}");
    }

    /// <summary>Passes when the tensors differ in dtype, shape or any byte (e.g. to show that a step matters).</summary>
    public static void NotBitIdentical(Tensor expected, Tensor actual, string what = "")
    {
        if (AreBitIdentical(expected, actual)) throw new XunitException($"{what}: the tensors are bit-identical");
    }

    public static bool AreBitIdentical(Tensor a, Tensor b)
    {
        if (a.dtype != b.dtype || !a.shape.SequenceEqual(b.shape)) return false;
        using var ca = a.cpu().contiguous();
        using var cb = b.cpu().contiguous();
        return TensorMemory.AsSpan<byte>(ca).SequenceEqual(TensorMemory.AsSpan<byte>(cb));
    }

    /// <summary>max |a − b|, computed in the tensors' dtype and read as a float.</summary>
    public static double MaxDiff(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return (a - b).abs().max().to(ScalarType.Float32).item<float>();
    }

    /// <summary>max |t|, read as a float: the scale a tolerance is taken relative to.</summary>
    public static double MaxAbs(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.abs().max().to(ScalarType.Float32).item<float>();
    }

    /// <summary>max |a − b| / max |b|. Logits of stories260K reach about ±19, where one fp32 ulp is 2e-6; forwards that sum
    /// in different orders (merged and unmerged adapters) differ by a few ulps, below 1e-5 relative to that scale.</summary>
    public static double RelativeMaxDiff(Tensor a, Tensor b) => MaxDiff(a, b) / MaxAbs(b);

    /// <summary>max |a − b| over named float arrays (gradients, adapter tensors); the names must agree.</summary>
    public static double MaxDiff(IReadOnlyDictionary<string, float[]> a, IReadOnlyDictionary<string, float[]> b)
    {
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        return a.Max(kv => kv.Value.Zip(b[kv.Key], (x, y) => Math.Abs((double)x - y)).Max());
    }

    private static string DescribeIfComparable(Tensor expected, Tensor actual) =>
        expected.shape.SequenceEqual(actual.shape) && !expected.dtype.Equals(ScalarType.Bool) ? Describe(expected, actual) : "";

    private static string Describe(Tensor expected, Tensor actual)
    {
        using var scope = NewDisposeScope();
        var e = expected.detach().to(ScalarType.Float64).cpu();
        var a = actual.detach().to(ScalarType.Float64).cpu();
        var diff = (a - e).abs().flatten();
        if (diff.numel() == 0) return "both empty";
        long flat = diff.argmax().item<long>();
        long[] index = Unravel(flat, expected.shape);
        return $"max |diff| {diff[flat].item<double>():G6} at [{string.Join(", ", index)}]: expected {e.flatten()[flat].item<double>():G9}, actual {a.flatten()[flat].item<double>():G9}";
    }

    private static long[] Unravel(long flat, long[] shape)
    {
        var index = new long[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            index[d] = flat % shape[d];
            flat /= shape[d];
        }
        return index;
    }
}
