using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Runtime;

/// <summary>
/// The dtype a frozen projection's matmul (and training attention) runs in. On a CPU without AVX-512 (BW, VL, DQ),
/// libtorch has no bf16/fp16 GEMM kernel: oneDNN is skipped (PyTorch's <c>mkldnn_bf16_device_check</c>) and ATen's
/// generic loops run instead, at 1–9 GFLOP/s where MKL's fp32 GEMM does 40–70 on the same two cores, and the
/// <c>grad·W</c> of every backward (a non-transposed GEMM) is the slowest of them (0.3–0.9 GFLOP/s). There a 16-bit
/// matmul of at least <see cref="WidenFromRows"/> rows is computed in fp32 and rounded once to the input's dtype,
/// which is what the generic kernel does too (fp32 accumulation, one rounding), in another summation order. Fewer
/// rows (a decode step) stay 16-bit: there the weight's widening copy costs more than the slow kernel.
/// GPUs and AVX-512 CPUs keep the native 16-bit kernels. <c>FINQLORA_CPU_MATMUL=native</c> or <c>=fp32</c>
/// overrides the choice (the benchmarks compare both).
/// </summary>
public static class CpuMatmulPrecision
{
    public const string Variable = "FINQLORA_CPU_MATMUL";

    /// <summary>Matmuls with fewer rows than this keep their 16-bit kernel (measured: 16 rows is where widening a
    /// 768×2048 bf16 weight into a reused buffer starts to pay).</summary>
    public const long WidenFromRows = 16;

    /// <summary>Whether 16-bit CPU matmuls are widened to fp32 in this process.</summary>
    public static bool WidensHalfPrecision { get; } = Decide(Environment.GetEnvironmentVariable(Variable));

    /// <summary>The dtype to multiply <paramref name="x"/> (rows along all but the last dimension) by a frozen weight
    /// in: fp32 for a widened 16-bit CPU input of enough rows, else the input's own dtype.</summary>
    public static ScalarType MatmulDType(Tensor x) =>
        Widens(x) && x.numel() / Math.Max(1, x.shape[^1]) >= WidenFromRows ? ScalarType.Float32 : x.dtype;

    /// <summary>The dtype for attention with gradients (training): fp32 for widened 16-bit CPU inputs, whose bf16
    /// backward is 5–7× slower than fp32's; inference attention keeps its dtype (its forward costs the same). A
    /// checkpointed layer's first forward (<see cref="CheckpointedForward"/>) takes fp32 too, as its recomputation will.</summary>
    public static ScalarType TrainingAttentionDType(Tensor q) =>
        Widens(q) && (q.requires_grad && is_grad_enabled() || _checkpointedForwards > 0) ? ScalarType.Float32 : q.dtype;

    [ThreadStatic] private static int _checkpointedForwards;

    /// <summary>Marks, on this thread until disposed, the first forward of a checkpointed layer: it runs without
    /// gradients but is recomputed with them in backward, so its attention must take the dtype the recomputation
    /// takes. Otherwise backward would differentiate outputs a bf16 rounding away from the ones forward passed on, and
    /// a checkpointed run's losses would differ from an unchecked one's.</summary>
    public static IDisposable CheckpointedForward()
    {
        _checkpointedForwards++;
        return new CheckpointedForwardScope();
    }

    private sealed class CheckpointedForwardScope : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _checkpointedForwards--;
        }
    }

    private static bool Widens(Tensor x) =>
        WidensHalfPrecision && x.device_type == DeviceType.CPU && x.dtype is ScalarType.BFloat16 or ScalarType.Float16;

    private static bool Decide(string? setting) => setting?.Trim().ToLowerInvariant() switch
    {
        "native" => false,
        "fp32" => true,
        _ => X86Base.IsSupported && !(Avx512BW.IsSupported && Avx512DQ.IsSupported && Avx512BW.VL.IsSupported),
    };
}
