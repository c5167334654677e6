using static TorchSharp.torch;

namespace FinQLoRA.Runtime;

/// <summary>
/// One reusable CPU buffer per thread and dtype that a frozen weight is written into for the length of one matmul:
/// quantized layers dequantize into it, and widened 16-bit matmuls (<see cref="CpuMatmulPrecision"/>) copy
/// their weight into its fp32 buffer.
/// A fresh 100 MB tensor per layer call costs the OS page faults and zeroing of every page (2–10 ms on Linux, far
/// more in sandboxes), more than the dequantization itself; reusing one buffer sized to the largest weight keeps the
/// memory at one layer's worth (the planner's <c>dequant_transient</c>) and faults its pages once.
/// The borrowed view is only valid until the next borrow on the same thread.
/// </summary>
internal static class WeightWorkspace
{
    /// <summary>The most weight elements a widened matmul writes at once (128 MiB in fp32): a larger dense weight (a
    /// large vocabulary's head: 2.1 GB in fp32 for Llama 3.1) is multiplied in row blocks of at most this many, and a
    /// larger group of projections is not fused, so the fp32 buffer stays near one layer's largest projection.</summary>
    public const long MaxWidenedElements = 32L * 1024 * 1024;

    [ThreadStatic] private static Tensor? _bf16;
    [ThreadStatic] private static Tensor? _fp32;
    [ThreadStatic] private static Dictionary<(long Rows, long Cols, ScalarType DType, bool Transposed), Tensor>? _matrices;

    /// <summary>A contiguous [shape] view of this thread's buffer for <paramref name="dtype"/> (bf16 or fp32), grown when needed.</summary>
    public static Tensor Borrow(long[] shape, ScalarType dtype)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        return Buffer(n, dtype).narrow(0, 0, n).view(shape);
    }

    /// <summary>
    /// The first rows·cols elements of this thread's buffer for <paramref name="dtype"/> as a [rows, cols] matrix, or
    /// with <paramref name="transposed"/> as its [cols, rows] transpose, made once per shape and kept: after the first
    /// call it enters no ATen op (a training matmul node borrows its weight twice a step per layer, and the narrow and
    /// view of <see cref="Borrow"/> were two dispatcher ops each time). The view belongs to the workspace: callers never
    /// dispose it, and it is valid until the next borrow on the same thread that writes the buffer.
    /// </summary>
    public static Tensor Matrix(long rows, long cols, ScalarType dtype, bool transposed)
    {
        var buffer = Buffer(rows * cols, dtype);
        _matrices ??= new();
        var key = (rows, cols, dtype, transposed);
        if (_matrices.TryGetValue(key, out var view)) return view;
        using (var scope = NewDisposeScope())
        {
            var matrix = buffer.narrow(0, 0, rows * cols).view(rows, cols);
            view = (transposed ? matrix.t() : matrix).DetachFromDisposeScope();
        }
        _matrices[key] = view;
        return view;
    }

    /// <summary>This thread's buffer for <paramref name="dtype"/>, grown to at least <paramref name="n"/> elements; growing
    /// drops the <see cref="Matrix"/> views of the old one (they would keep its memory alive).</summary>
    private static Tensor Buffer(long n, ScalarType dtype)
    {
        ref Tensor? buffer = ref dtype == ScalarType.BFloat16 ? ref _bf16 : ref _fp32;
        if (dtype is not (ScalarType.BFloat16 or ScalarType.Float32))
            throw new ArgumentException($"workspace holds bf16 or fp32, not {dtype}", nameof(dtype));
        if (buffer is null || buffer.numel() < n)
        {
            DropMatrices(dtype);
            buffer?.Dispose();
            buffer = empty([n], dtype).DetachFromDisposeScope();
        }
        return buffer;
    }

    private static void DropMatrices(ScalarType dtype)
    {
        if (_matrices is null) return;
        foreach (var key in _matrices.Keys.Where(k => k.DType == dtype).ToList())
        {
            _matrices[key].Dispose();
            _matrices.Remove(key);
        }
    }

    /// <summary>Elements this thread's buffer for <paramref name="dtype"/> holds now (0 before its first borrow).</summary>
    public static long Elements(ScalarType dtype) => (dtype == ScalarType.BFloat16 ? _bf16 : _fp32)?.numel() ?? 0;

    /// <summary>Frees this thread's buffers (e.g. after inference, before a phase that needs the memory).</summary>
    public static void Release()
    {
        DropMatrices(ScalarType.BFloat16);
        DropMatrices(ScalarType.Float32);
        _bf16?.Dispose(); _bf16 = null;
        _fp32?.Dispose(); _fp32 = null;
    }
}
