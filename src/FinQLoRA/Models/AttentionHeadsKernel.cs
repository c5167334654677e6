using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// <see cref="AttentionHeadsFunction"/>'s forward and backward for bf16 rows on the CPU, one pass over the tokens each in
/// C#. Forward: a projection's output rows [B, T, n·d] become attention's heads [B, n·G, T, d], each of the n heads
/// rotated (RoPE, as <see cref="RotaryKernel"/> rounds: <c>bf16(bf16(x·cos) + bf16(P(x)·sin))</c>) or not, and written G
/// times (grouped-query attention's repeat of a KV head for its G query heads, as <c>repeat_interleave(G, dim: 1)</c>).
/// Backward: the G heads' gradients of a KV head summed in fp32 and rounded once (the repeat's backward), then rotated
/// back (<c>bf16(bf16(ĝ·cos) + P(bf16(ĝ·sin)))</c>), written as rows. The composed path ran a reshape, a transpose, the
/// RoPE node and repeat_interleave (an unsqueeze, an expand, a copy and a view) each way, about forty ATen ops for k
/// and v together.
/// <para>The heads' layout is the one the composed path gave SDPA, so attention reads the same strides and sums in the
/// same order: with G = 1 [B, T, n, d] memory seen as [B, n, T, d] (RoPE's output follows its transposed input), with
/// G &gt; 1 contiguous [B, n·G, T, d] (repeat_interleave's copy).</para>
/// </summary>
internal static unsafe class AttentionHeadsKernel
{
    /// <summary>Whether the kernels take <paramref name="rows"/> [B, T, n·d] (bf16, CPU, each row's elements consecutive)
    /// with cos and sin [B, 1, T, d] (bf16, contiguous).</summary>
    public static bool Applies(Tensor rows, Tensor cos, Tensor sin, int headDim) =>
        rows.device_type == DeviceType.CPU && rows.dtype == ScalarType.BFloat16 && rows.dim() == 3 && rows.stride(2) == 1
        && rows.shape[2] % headDim == 0 && headDim % 2 == 0
        && cos.dtype == ScalarType.BFloat16 && sin.dtype == ScalarType.BFloat16 && cos.device_type == DeviceType.CPU && sin.device_type == DeviceType.CPU
        && cos.dim() == 4 && cos.shape[0] == rows.shape[0] && cos.shape[1] == 1 && cos.shape[2] == rows.shape[1] && cos.shape[3] == headDim
        && sin.shape.SequenceEqual(cos.shape) && cos.is_contiguous() && sin.is_contiguous();

    /// <summary>The heads [B, n·G, T, d] of rows [B, T, n·d] (see the class summary for the layout).</summary>
    public static Tensor Forward(Tensor rows, Tensor cos, Tensor sin, int headDim, int groups, bool rotate)
    {
        long b = rows.shape[0], t = rows.shape[1], n = rows.shape[2] / headDim, d = headDim, heads = n * groups;
        var output = groups == 1
            ? empty_strided([b, heads, t, d], [t * heads * d, d, heads * d, 1], ScalarType.BFloat16)
            : empty([b, heads, t, d], ScalarType.BFloat16);
        long[] rs = rows.stride(), os = output.stride();
        nint src = TensorMemory.FirstElementPointer(rows), dst = TensorMemory.FirstElementPointer(output);
        nint pc = TensorMemory.DataPointer(cos), ps = TensorMemory.DataPointer(sin);
        RowBlocks.ForEach(b * t, 32, token =>
        {
            long bi = token / t, ti = token % t;
            ushort* row = (ushort*)src + bi * rs[0] + ti * rs[1];
            ushort* c = (ushort*)pc + token * d, s = (ushort*)ps + token * d;
            ushort* head = stackalloc ushort[(int)d];
            for (long kv = 0; kv < n; kv++)
            {
                ushort* x = row + kv * d;
                if (rotate) Rotate(x, c, s, head, d, backward: false);
                else new ReadOnlySpan<ushort>(x, (int)d).CopyTo(new Span<ushort>(head, (int)d));
                for (long r = 0; r < groups; r++)
                    new ReadOnlySpan<ushort>(head, (int)d).CopyTo(new Span<ushort>((ushort*)dst + bi * os[0] + (kv * groups + r) * os[1] + ti * os[2], (int)d));
            }
        });
        return output;
    }

    /// <summary>The rows' gradient [B, T, n·d] (contiguous) from the heads' gradient <paramref name="g"/> [B, n·G, T, d]
    /// in any layout.</summary>
    public static Tensor Backward(Tensor g, Tensor cos, Tensor sin, int headDim, int groups, bool rotate)
    {
        using var scope = NewDisposeScope();
        var gIn = g.dtype == ScalarType.BFloat16 && g.stride(3) == 1 ? g : g.to(ScalarType.BFloat16).contiguous();
        long b = g.shape[0], heads = g.shape[1], t = g.shape[2], d = headDim, n = heads / groups;
        var dx = empty([b, t, n * d], ScalarType.BFloat16);
        long[] gs = gIn.stride();
        nint src = TensorMemory.FirstElementPointer(gIn), dst = TensorMemory.DataPointer(dx);
        nint pc = TensorMemory.DataPointer(cos), ps = TensorMemory.DataPointer(sin);
        RowBlocks.ForEach(b * t, 32, token =>
        {
            long bi = token / t, ti = token % t;
            ushort* c = (ushort*)pc + token * d, s = (ushort*)ps + token * d;
            ushort* summed = stackalloc ushort[(int)d];
            float* acc = stackalloc float[(int)d];
            for (long kv = 0; kv < n; kv++)
            {
                new Span<float>(acc, (int)d).Clear();
                for (long r = 0; r < groups; r++)
                {
                    ushort* gr = (ushort*)src + bi * gs[0] + (kv * groups + r) * gs[1] + ti * gs[2];
                    for (long j = 0; j < d; j++) acc[j] += Widen(gr[j]);
                }
                ushort* o = (ushort*)dst + token * n * d + kv * d;
                if (!rotate)
                    for (long j = 0; j < d; j++) o[j] = BFloat16Rounding.Round(acc[j]);
                else
                {
                    for (long j = 0; j < d; j++) summed[j] = BFloat16Rounding.Round(acc[j]);
                    Rotate(summed, c, s, o, d, backward: true);
                }
            }
        });
        return dx.MoveToOuterDisposeScope();
    }

    /// <summary>One head: forward <c>x·cos + P(x)·sin</c>, backward <c>g·cos + P(g·sin)</c>, rounding as the composed ops.</summary>
    private static void Rotate(ushort* x, ushort* c, ushort* s, ushort* y, long d, bool backward)
    {
        long half = d / 2;
        for (long j = 0; j < d; j++)
        {
            long p = j < half ? j + half : j - half; // P: the halves swapped
            float direct = Widen(BFloat16Rounding.Round(Widen(x[j]) * Widen(c[j])));
            float swapped = Widen(BFloat16Rounding.Round(Widen(x[p]) * Widen(backward ? s[p] : s[j])));
            y[j] = BFloat16Rounding.Round(direct + swapped);
        }
    }

    private static float Widen(ushort bits) => BFloat16Rounding.Widen(bits);
}
