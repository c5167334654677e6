using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// The two ends of <see cref="LoraGroupFunction"/> for 16-bit bases on the CPU, one pass in C# each instead of per-branch
/// ATen ops. Forward: each branch's output <c>y_i = bf16(z_i + base_i)</c> from the fp32 low-rank sum z [N, ΣOut] and the
/// bases' outputs, written into its own contiguous tensor; the composed path ran an add, and per branch a narrow, a cast
/// (<c>to</c>, <c>_to_copy</c>, an allocation and a copy) and a view. The sum is the same fp32 add of the widened base
/// and the cast the same round-to-nearest-even (<see cref="BFloat16Rounding"/>), so the outputs are bit-identical.
/// Backward: the branches' output gradients side by side, widened to fp32 for the products and, where the bases came as
/// one fused output, in their dtype for the bases' gradient; the composed path's reshapes, cat and cast did that.
/// </summary>
internal static unsafe class LoraOutputKernel
{
    /// <summary>Whether the kernels take these bases (bf16 CPU tensors whose leading dimensions flatten to rows) with an
    /// fp32 low-rank sum.</summary>
    public static bool Applies(IReadOnlyList<Tensor> bases, ScalarType sumDtype) =>
        sumDtype == ScalarType.Float32 && bases.All(b => b.device_type == DeviceType.CPU && b.dtype == ScalarType.BFloat16 && b.stride(-1) == 1 && RowsOf(b) is not null);

    /// <summary>y_i = bf16(z[:, columns of i] + base_i) for each branch, each [.., width_i] like x's leading shape.</summary>
    /// <param name="z">fp32 [N, ΣOut], contiguous</param>
    /// <param name="bases">one [.., ΣOut] (side by side) or one [.., width_i] per branch</param>
    public static List<Tensor> Outputs(Tensor z, IReadOnlyList<Tensor> bases, long[] widths, long[] leading)
    {
        long n = z.shape[0], total = z.shape[1];
        var outputs = widths.Select(w => empty([.. leading, w], ScalarType.BFloat16)).ToList();
        var destinations = outputs.Select(o => TensorMemory.DataPointer(o)).ToArray();
        var baseRows = bases.Select(b => (Pointer: TensorMemory.FirstElementPointer(b), RowStride: RowsOf(b)!.Value)).ToArray();
        nint pz = TensorMemory.DataPointer(z);
        RowBlocks.ForEach(n, 16, row =>
        {
            float* zr = (float*)pz + row * total;
            long column = 0;
            for (int i = 0; i < widths.Length; i++)
            {
                var (bp, bs) = bases.Count == 1 ? baseRows[0] : baseRows[i];
                ushort* br = (ushort*)bp + row * bs + (bases.Count == 1 ? column : 0);
                ushort* yr = (ushort*)destinations[i] + row * widths[i];
                float* zi = zr + column;
                for (long j = 0; j < widths[i]; j++) yr[j] = BFloat16Rounding.Round(zi[j] + BFloat16Rounding.Widen(br[j]));
                column += widths[i];
            }
        });
        return outputs;
    }

    /// <summary>The output gradients side by side: fp32 [N, ΣOut], and with <paramref name="baseShape"/> the same values
    /// in bf16 as a tensor of that shape (the fused base output's gradient), else null.</summary>
    public static (Tensor Wide, Tensor? Base) Gradients(IReadOnlyList<Tensor> grads, long[] widths, long n, long[]? baseShape)
    {
        using var scope = NewDisposeScope();
        long total = widths.Sum();
        var sources = grads.Select(g => g.dtype == ScalarType.BFloat16 && g.is_contiguous() ? g : g.to(ScalarType.BFloat16).contiguous()).ToArray();
        var pointers = sources.Select(g => TensorMemory.DataPointer(g)).ToArray();
        var wide = empty([n, total], ScalarType.Float32);
        var side = baseShape is null ? null : empty(baseShape, ScalarType.BFloat16);
        nint pw = TensorMemory.DataPointer(wide), pb = side is null ? 0 : TensorMemory.DataPointer(side);
        RowBlocks.ForEach(n, 16, row =>
        {
            long column = 0;
            for (int i = 0; i < widths.Length; i++)
            {
                ushort* gr = (ushort*)pointers[i] + row * widths[i];
                float* wr = (float*)pw + row * total + column;
                for (long j = 0; j < widths[i]; j++) wr[j] = BFloat16Rounding.Widen(gr[j]);
                if (pb != 0) new ReadOnlySpan<ushort>(gr, (int)widths[i]).CopyTo(new Span<ushort>((ushort*)pb + row * total + column, (int)widths[i]));
                column += widths[i];
            }
        });
        return (wide.MoveToOuterDisposeScope(), side?.MoveToOuterDisposeScope());
    }

    /// <summary>The stride between consecutive rows of [.., width] where the leading dimensions flatten to one row index
    /// without a copy (a contiguous tensor, or a column slice of one), else null.</summary>
    private static long? RowsOf(Tensor t)
    {
        long[] shape = t.shape, stride = t.stride();
        if (shape.Length < 2) return null;
        long rowStride = stride[^2];
        for (int k = shape.Length - 2; k > 0; k--)
            if (shape[k - 1] > 1 && stride[k - 1] != stride[k] * shape[k]) return null;
        return rowStride;
    }
}
