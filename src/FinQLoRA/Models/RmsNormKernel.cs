using System.Runtime.Intrinsics;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// <see cref="RmsNormFunction"/>'s forward and backward for bf16 rows on the CPU, each one pass over the rows in C#
/// (two reads of a row, one write) instead of libtorch ops: a norm's forward and backward were 80 ATen ops a layer
/// (casts, pow, mean, rsqrt, products, and the temporaries each allocates). The arithmetic is the composed forward's,
/// rounding where it rounds: <c>r = 1/√(Σx²/H + eps)</c> in fp32, <c>n = bf16(x·r)</c>, <c>y = bf16(w·n)</c>; backward
/// <c>ĝ = bf16(g·w)</c>, <c>grad_x = bf16((ĝ − x·r·mean(ĝ·x·r))·r)</c>. Only the order of the fp32 sums differs from
/// libtorch's, so an output can differ from the composed one by one bf16 rounding where r lands on a rounding boundary.
/// </summary>
internal static unsafe class RmsNormKernel
{
    /// <summary>Whether the kernels take x [.., H] and w [H]: both bf16, contiguous, on the CPU.</summary>
    public static bool Applies(Tensor x, Tensor weight) =>
        x.device_type == DeviceType.CPU && weight.device_type == DeviceType.CPU
        && x.dtype == ScalarType.BFloat16 && weight.dtype == ScalarType.BFloat16
        && weight.dim() == 1 && x.shape[^1] == weight.shape[0] && x.is_contiguous() && weight.is_contiguous();

    public static Tensor Forward(Tensor x, Tensor weight, double eps)
    {
        var y = empty_like(x);
        long h = weight.shape[0];
        nint ax = TensorMemory.DataPointer(x), aw = TensorMemory.DataPointer(weight), ay = TensorMemory.DataPointer(y);
        float e = (float)eps;
        RowBlocks.ForEach(x.numel() / h, 64, row =>
        {
            ushort* xr = (ushort*)ax + row * h, yr = (ushort*)ay + row * h, pw = (ushort*)aw;
            float r = 1f / MathF.Sqrt(Dot(xr, xr, h) / h + e);
            for (long j = 0; j < h; j++)
            {
                float n = BFloat16Rounding.Widen(BFloat16Rounding.Round(BFloat16Rounding.Widen(xr[j]) * r));
                yr[j] = BFloat16Rounding.Round(BFloat16Rounding.Widen(pw[j]) * n);
            }
        });
        return y;
    }

    /// <param name="g">the output's gradient, x's shape (made contiguous here)</param>
    public static Tensor Backward(Tensor g, Tensor x, Tensor weight, double eps)
    {
        using var contiguous = g.is_contiguous() && g.dtype == ScalarType.BFloat16 ? null : g.to(ScalarType.BFloat16).contiguous();
        var gc = contiguous ?? g;
        var dx = empty_like(x);
        long h = weight.shape[0];
        nint ax = TensorMemory.DataPointer(x), aw = TensorMemory.DataPointer(weight);
        nint ag = TensorMemory.DataPointer(gc), ad = TensorMemory.DataPointer(dx);
        float e = (float)eps;
        RowBlocks.ForEach(x.numel() / h, 64, row =>
        {
            ushort* xr = (ushort*)ax + row * h, gr = (ushort*)ag + row * h, dr = (ushort*)ad + row * h, pw = (ushort*)aw;
            float r = 1f / MathF.Sqrt(Dot(xr, xr, h) / h + e);
            // ĝ = bf16(g·w): the gradient through the bf16 product w·n, then through n's cast
            Span<float> gw = h <= 16384 ? stackalloc float[(int)h] : new float[h];
            float dot = 0;
            for (long j = 0; j < h; j++)
            {
                float gj = BFloat16Rounding.Widen(BFloat16Rounding.Round(BFloat16Rounding.Widen(gr[j]) * BFloat16Rounding.Widen(pw[j])));
                gw[(int)j] = gj;
                dot += gj * (BFloat16Rounding.Widen(xr[j]) * r);
            }
            dot /= h;
            for (long j = 0; j < h; j++)
            {
                float n = BFloat16Rounding.Widen(xr[j]) * r;
                dr[j] = BFloat16Rounding.Round((gw[(int)j] - n * dot) * r);
            }
        });
        return dx;
    }

    /// <summary>Σ a_j·b_j in fp32, 16 lanes at a time where the CPU has them.</summary>
    private static float Dot(ushort* a, ushort* b, long n)
    {
        long j = 0;
        float sum = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var acc = Vector512<float>.Zero;
            for (; j + 16 <= n; j += 16)
                acc += Widen(Vector256.Load(a + j)) * Widen(Vector256.Load(b + j));
            sum = Vector512.Sum(acc);
        }
        for (; j < n; j++) sum += BFloat16Rounding.Widen(a[j]) * BFloat16Rounding.Widen(b[j]);
        return sum;
    }

    private static Vector512<float> Widen(Vector256<ushort> bits) =>
        (Vector512.Create(Vector256.WidenLower(bits), Vector256.WidenUpper(bits)) << 16).AsSingle();
}
