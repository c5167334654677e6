using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// <see cref="RotaryFunction"/>'s forward and backward for bf16 heads on the CPU, one pass each in C#, instead of the
/// products, the two narrows and the cat of the swap and the sum (about thirty ATen ops a call, forward and backward).
/// x is [B, H, T, d] as attention makes it, a transposed view of the projection's [B, T, H, d] rows; the result keeps
/// that layout (so attention reads what it read before). The arithmetic rounds where the composed ops round:
/// <c>y = bf16(bf16(x·cos) + bf16(P(x)·sin))</c>, backward <c>bf16(bf16(g·cos) + P(bf16(g·sin)))</c>, so outputs and
/// gradients are bit-identical to <see cref="RotaryFunction.Rotate"/> and its composed backward.
/// </summary>
internal static unsafe class RotaryKernel
{
    /// <summary>Whether the kernels take x [B, H, T, d] (bf16, CPU, its [B, T, H, d] transpose contiguous) with cos and
    /// sin [B, 1, T, d] (bf16, contiguous): rotation over whole heads.</summary>
    public static bool Applies(Tensor x, Tensor cos, Tensor sin) =>
        x.device_type == DeviceType.CPU && x.dtype == ScalarType.BFloat16 && x.dim() == 4
        && cos.dtype == ScalarType.BFloat16 && sin.dtype == ScalarType.BFloat16 && cos.device_type == DeviceType.CPU && sin.device_type == DeviceType.CPU
        && cos.dim() == 4 && cos.shape[0] == x.shape[0] && cos.shape[1] == 1 && cos.shape[2] == x.shape[2] && cos.shape[3] == x.shape[3]
        && sin.shape.SequenceEqual(cos.shape) && cos.is_contiguous() && sin.is_contiguous()
        && x.shape[3] % 2 == 0 && HeadsLastButOne(x);

    /// <summary>x·cos + P(x)·sin in x's layout.</summary>
    public static Tensor Forward(Tensor x, Tensor cos, Tensor sin)
    {
        var y = empty_strided(x.shape, x.stride(), ScalarType.BFloat16);
        Rotate(x, cos, sin, y, backward: false);
        return y;
    }

    /// <summary>g·cos + P(g·sin) in the layout of x (<paramref name="shape"/>, <paramref name="strides"/>), g of x's
    /// shape in any layout.</summary>
    public static Tensor Backward(Tensor g, long[] shape, long[] strides, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var gIn = g.dtype == ScalarType.BFloat16 && HeadsLastButOne(g) ? g : empty_strided(shape, strides, ScalarType.BFloat16).copy_(g);
        var dx = empty_strided(shape, strides, ScalarType.BFloat16);
        Rotate(gIn, cos, sin, dx, backward: true);
        return dx.MoveToOuterDisposeScope();
    }

    /// <summary>[B, H, T, d] whose [B, T, H, d] transpose is contiguous (heads of one token side by side), read from
    /// the strides (a transposed view to ask is_contiguous would cost two ATen ops a call).</summary>
    private static bool HeadsLastButOne(Tensor x)
    {
        long[] shape = x.shape, stride = x.stride();
        long d = shape[3], heads = shape[1], t = shape[2];
        return (d == 1 || stride[3] == 1) && (heads == 1 || stride[1] == d) && (t == 1 || stride[2] == heads * d)
            && (shape[0] == 1 || stride[0] == t * heads * d);
    }

    private static void Rotate(Tensor input, Tensor cos, Tensor sin, Tensor output, bool backward)
    {
        long b = input.shape[0], heads = input.shape[1], t = input.shape[2], d = input.shape[3];
        nint src = TensorMemory.FirstElementPointer(input), dst = TensorMemory.FirstElementPointer(output); // both HeadsLastButOne
        nint pc = TensorMemory.DataPointer(cos), ps = TensorMemory.DataPointer(sin);
        long half = d / 2;
        Parallel.For(0, b * t, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, token =>
        {
            // token = bi·T + ti: its heads lie side by side at token·H·d; its cos and sin rows at token·d
            ushort* c = (ushort*)pc + token * d, s = (ushort*)ps + token * d;
            for (long h = 0; h < heads; h++)
            {
                ushort* xi = (ushort*)src + (token * heads + h) * d, yo = (ushort*)dst + (token * heads + h) * d;
                for (long j = 0; j < d; j++)
                {
                    long p = j < half ? j + half : j - half; // P: the halves swapped
                    float direct = Widen(BFloat16Rounding.Round(Widen(xi[j]) * Widen(c[j])));
                    // forward: P(x)_j·sin_j; backward: P(g·sin)_j = g_p·sin_p
                    float swapped = backward
                        ? Widen(BFloat16Rounding.Round(Widen(xi[p]) * Widen(s[p])))
                        : Widen(BFloat16Rounding.Round(Widen(xi[p]) * Widen(s[j])));
                    yo[j] = BFloat16Rounding.Round(direct + swapped);
                }
            }
        });
    }

    private static float Widen(ushort bits) => BFloat16Rounding.Widen(bits);
}
