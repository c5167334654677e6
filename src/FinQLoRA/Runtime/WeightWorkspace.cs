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

    /// <summary>A contiguous [shape] view of this thread's buffer for <paramref name="dtype"/> (bf16 or fp32), grown when needed.</summary>
    public static Tensor Borrow(long[] shape, ScalarType dtype)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        ref Tensor? buffer = ref dtype == ScalarType.BFloat16 ? ref _bf16 : ref _fp32;
        if (dtype is not (ScalarType.BFloat16 or ScalarType.Float32))
            throw new ArgumentException($"workspace holds bf16 or fp32, not {dtype}", nameof(dtype));
        if (buffer is null || buffer.numel() < n)
        {
            buffer?.Dispose();
            buffer = empty([n], dtype).DetachFromDisposeScope();
        }
        return buffer.narrow(0, 0, n).view(shape);
    }

    /// <summary>Elements this thread's buffer for <paramref name="dtype"/> holds now (0 before its first borrow).</summary>
    public static long Elements(ScalarType dtype) => (dtype == ScalarType.BFloat16 ? _bf16 : _fp32)?.numel() ?? 0;

    /// <summary>Frees this thread's buffers (e.g. after inference, before a phase that needs the memory).</summary>
    public static void Release()
    {
        _bf16?.Dispose(); _bf16 = null;
        _fp32?.Dispose(); _fp32 = null;
    }
}
