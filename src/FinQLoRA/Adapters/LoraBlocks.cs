using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// The group node's stacked A [G, r, in] and block-diagonal B [ΣOut, G·r] (<see cref="LoraGroupFunction"/>), written by
/// one allocation and memory copies for contiguous CPU matrices: libtorch's <c>stack</c> (an unsqueeze per branch and a
/// cat) and <c>block_diag</c> (a zero-filled result, and a slice and a copy per block) were about fifteen dispatcher ops
/// per step and layer. The values are the matrices' own, so the result is identical to theirs.
/// </summary>
internal static unsafe class LoraBlocks
{
    /// <summary>[G, r, in]: the A_i one after the other.</summary>
    public static Tensor Stack(Tensor[] a)
    {
        if (!Copyable(a) || a.Any(ai => !ai.shape.SequenceEqual(a[0].shape))) return stack(a, 0);
        var stacked = empty([a.Length, .. a[0].shape], a[0].dtype);
        long bytes = a[0].numel() * a[0].element_size();
        byte* to = (byte*)TensorMemory.DataPointer(stacked);
        foreach (var ai in a)
        {
            Buffer.MemoryCopy((void*)TensorMemory.DataPointer(ai), to, bytes, bytes);
            to += bytes;
        }
        return stacked;
    }

    /// <summary>diag(B_1, …, B_G): B_i [out_i, r] at rows Σ_{j&lt;i} out_j, columns i·r, zeros elsewhere.</summary>
    public static Tensor BlockDiagonal(Tensor[] b)
    {
        if (!Copyable(b) || b.Any(bi => bi.dim() != 2 || bi.shape[1] != b[0].shape[1])) return block_diag(b);
        long r = b[0].shape[1], columns = b.Length * r, rows = b.Sum(bi => bi.shape[0]);
        var diagonal = empty([rows, columns], b[0].dtype);
        long size = b[0].element_size(), rowBytes = columns * size, blockBytes = r * size;
        byte* to = (byte*)TensorMemory.DataPointer(diagonal);
        new Span<byte>(to, checked((int)(rows * rowBytes))).Clear();
        long row = 0;
        for (int i = 0; i < b.Length; i++)
        {
            byte* from = (byte*)TensorMemory.DataPointer(b[i]);
            for (long k = 0; k < b[i].shape[0]; k++, row++)
                Buffer.MemoryCopy(from + k * blockBytes, to + row * rowBytes + i * blockBytes, blockBytes, blockBytes);
        }
        return diagonal;
    }

    /// <summary>Contiguous CPU tensors of one dtype, which a memory copy reads as they are.</summary>
    private static bool Copyable(Tensor[] t) =>
        t.All(x => x.device_type == DeviceType.CPU && x.dtype == t[0].dtype && x.is_contiguous());
}
