using FinQLoRA.Adapters;
using FinQLoRA.Models;

namespace FinQLoRA.Planning;

/// <summary>A (Q)LoRA training setup for the memory planner.</summary>
/// <param name="BatchSize">Sequences per micro-batch (B).</param>
/// <param name="SeqLen">Tokens per sequence (S).</param>
/// <param name="Rank">LoRA rank (R).</param>
/// <param name="Targets">The projections with adapters; null means q, k, v (FinLoRA's setting).</param>
/// <param name="GradientCheckpointing">Recompute each decoder layer in backward, keeping only its input.</param>
/// <param name="LoraDropout">Adds a 1-byte mask per adapted input element when &gt; 0 (peft's default setups use 0.05–0.1).</param>
/// <param name="Device">GPU memory (CUDA, the default) or the peak RSS of a CPU training process.</param>
/// <param name="TargetTokensPerExample">Supervised tokens per sequence, the only positions the trainer projects onto the
/// vocabulary; null means every token (<paramref name="SeqLen"/>: plain language modelling, an upper bound for any SFT
/// row). A completion-only SFT row has its answer's tokens, a FinLoRA classification task 1–3.</param>
/// <param name="CpuWidening">For <see cref="MemoryDevice.Cpu"/>: whether 16-bit matmuls run widened to fp32
/// (<see cref="FinQLoRA.Runtime.CpuMatmulPrecision"/>), which writes weights into an fp32 buffer; null means what this
/// process does.</param>
public sealed record TrainingMemoryOptions(
    int BatchSize = 1,
    int SeqLen = 512,
    int Rank = LoraConfig.DefaultRank,
    IReadOnlyList<ProjectionKind>? Targets = null,
    bool GradientCheckpointing = false,
    double LoraDropout = LoraConfig.DefaultDropout,
    MemoryDevice Device = MemoryDevice.Cuda,
    int? TargetTokensPerExample = null,
    bool? CpuWidening = null)
{
    /// <summary><see cref="CpuWidening"/>, or this process's choice.</summary>
    public bool Widens => CpuWidening ?? FinQLoRA.Runtime.CpuMatmulPrecision.WidensHalfPrecision;

    /// <summary>Target tokens per sequence: <see cref="TargetTokensPerExample"/>, or all <see cref="SeqLen"/> tokens.</summary>
    public int TargetTokens => TargetTokensPerExample ?? SeqLen;

    public IReadOnlyList<ProjectionKind> AdapterTargets => Targets ?? [ProjectionKind.Q, ProjectionKind.K, ProjectionKind.V];
}
