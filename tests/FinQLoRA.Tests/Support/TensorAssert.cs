using Xunit.Sdk;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Support;

/// <summary>
/// <c>allclose</c> as an assertion that says by how much it failed: the largest |actual − expected|, where it is and
/// both values there (a bare boolean check of <c>x.allclose(y)</c> only says "False").
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
