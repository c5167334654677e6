using static TorchSharp.torch;

namespace FinQLoRA.Adapters.GradientCapture;

/// <summary>
/// What one forward of a <see cref="LoraLinear"/> (run with grad enabled) leaves for per-example gradients, all fp32 in
/// the input's leading shape [B, T, …]: the adapter input x' = dropout(x), u = A·x', and after backward dL/du, dL/dz
/// (z = B·u before the scaling) and, for DoRA, dL/dscale per token (scale = m/n broadcast over tokens) with the detached
/// row norm n. A part the capture was not asked for stays null; a gradient stays null when backward never reached it
/// (no target token depended on this forward: read it as zero). Owns its tensors.
/// </summary>
public sealed class LoraForwardRecord : IDisposable
{
    /// <summary>x' [B, T, in] (kept when A's gradient is wanted).</summary>
    public Tensor? Input { get; internal set; }
    /// <summary>u [B, T, r] (kept when B's gradient is wanted).</summary>
    public Tensor? LowRank { get; internal set; }
    /// <summary>dL/du [B, T, r].</summary>
    public Tensor? LowRankGradient { get; internal set; }
    /// <summary>dL/dz [B, T, out].</summary>
    public Tensor? OutputGradient { get; internal set; }
    /// <summary>dL/dscale per token [B, T, out] (DoRA).</summary>
    public Tensor? ScaleGradient { get; internal set; }
    /// <summary>DoRA's detached row norm n [out]: dscale/dm = 1/n.</summary>
    public Tensor? Norm { get; internal set; }

    /// <summary>A detached handle outside any dispose scope (the storage is shared, not copied).</summary>
    internal static Tensor Keep(Tensor t)
    {
        var kept = t.detach();
        kept.DetachFromDisposeScope();
        return kept;
    }

    public void Dispose()
    {
        foreach (var t in new[] { Input, LowRank, LowRankGradient, OutputGradient, ScaleGradient, Norm }) t?.Dispose();
        Input = LowRank = LowRankGradient = OutputGradient = ScaleGradient = Norm = null;
    }
}
