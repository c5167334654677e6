using System.Runtime.InteropServices;

namespace FinQLoRA.Runtime;

/// <summary>
/// Keeps the memory of freed tensors in the process's heap during training instead of handing it back to the kernel.
/// libtorch allocates CPU tensors with glibc's malloc; by default every block above the mmap threshold (128 KiB, raised
/// at most to 32 MiB as big blocks are freed) is a fresh mapping, and the heap's free top is trimmed back, so each step's
/// activations, gradients and casts arrive as new pages: one page fault and one zeroed page per 4 KiB, every step. On
/// the 2-core AMD EPYC VM (native bf16) that was 3.3x the whole 4x256 step of the 100M bench model (8.67 and 9.23 s
/// against 2.71 s, runs bracketing each other; see docs of issue 26). Raising the mmap and trim thresholds makes
/// malloc reuse the same pages step after step; the peak RSS of a step is unchanged (the same blocks are live at the
/// peak), but what a step frees stays mapped until the process ends. A training process repeats that peak every
/// step, so this is what it holds anyway; serving and evaluation are left with glibc's defaults.
/// <see cref="TrainingFusions.Enabled"/> off (FINQLORA_FUSED_STEP=off) leaves the defaults too, for before/after runs.
/// </summary>
public static class TrainingHeap
{
    private const int M_TRIM_THRESHOLD = -1;
    private const int M_TOP_PAD = -2;
    private const int M_MMAP_THRESHOLD = -3;
    private static readonly Lock Gate = new();
    private static bool _retained;

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int Mallopt(int param, int value);

    /// <summary>True once <see cref="Retain"/> has changed malloc's thresholds in this process.</summary>
    public static bool Retained => _retained;

    /// <summary>Idempotent. Only on Linux with glibc (where mallopt exists) and with the fused step enabled.</summary>
    public static void Retain()
    {
        lock (Gate)
        {
            if (_retained || !OperatingSystem.IsLinux() || !TrainingFusions.Enabled) return;
            try
            {
                // 1 GiB: every activation of a training step (the largest, fp32 logits, is tens of MiB) comes from the
                // heap; the trim threshold keeps the freed top; the pad grows the heap in large steps.
                _retained = Mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1
                    & Mallopt(M_TRIM_THRESHOLD, int.MaxValue) == 1
                    & Mallopt(M_TOP_PAD, 64 << 20) == 1;
            }
            catch (EntryPointNotFoundException) { } // not glibc (musl has no mallopt thresholds): nothing to tune
            catch (DllNotFoundException) { }
        }
    }
}
