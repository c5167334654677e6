using static TorchSharp.torch;

namespace FinQLoRA.Adapters.GradientCapture;

/// <summary>
/// Set on a <see cref="LoraLinear"/> (<see cref="LoraLinear.Capture"/>) while differentially private training computes
/// per-example gradients: every forward run with grad enabled adds one <see cref="LoraForwardRecord"/>, whose gradients
/// backward fills in. Forwards without grad (evaluation, the first pass of a checkpointed layer) record nothing, so a
/// gradient-checkpointed layer is recorded once, by its recomputation in backward. Only the parts asked for are kept
/// (a frozen A, as in FFA-LoRA, needs neither x' nor dL/du).
/// </summary>
public sealed class LoraGradientCapture(bool wantA, bool wantB, bool wantMagnitude) : IDisposable
{
    private readonly List<LoraForwardRecord> _records = [];

    public bool WantA { get; } = wantA;
    public bool WantB { get; } = wantB;
    public bool WantMagnitude { get; } = wantMagnitude;

    /// <summary>The forwards recorded since the last <see cref="Clear"/>, in the order they ran.</summary>
    public IReadOnlyList<LoraForwardRecord> Records => _records;

    /// <summary>A new record when this forward builds a graph, else null (nothing is tapped).</summary>
    internal LoraForwardRecord? BeginForward()
    {
        if (!is_grad_enabled()) return null;
        var record = new LoraForwardRecord();
        _records.Add(record);
        return record;
    }

    /// <summary>Keeps x' and u and taps u for dL/du; returns the u to compute on.</summary>
    internal Tensor TapLowRank(LoraForwardRecord record, Tensor adapterInput, Tensor u)
    {
        if (WantB) record.LowRank = LoraForwardRecord.Keep(u);
        if (!WantA || !u.requires_grad) return u;
        record.Input = LoraForwardRecord.Keep(adapterInput);
        return GradientTapFunction.Apply(u, g => Replace(g, x => record.LowRankGradient = x, record.LowRankGradient));
    }

    /// <summary>Taps z = B·u for dL/dz; returns the z to compute on.</summary>
    internal Tensor TapOutput(LoraForwardRecord record, Tensor z) =>
        WantB && z.requires_grad ? GradientTapFunction.Apply(z, g => Replace(g, x => record.OutputGradient = x, record.OutputGradient)) : z;

    /// <summary>DoRA: broadcasts scale [out] to every token of <paramref name="tokenShape"/> and taps it, so each token's
    /// dL/dscale is seen before autograd sums them; returns the per-token scale to compute on.</summary>
    internal Tensor TapScale(LoraForwardRecord record, Tensor scale, Tensor norm, long[] tokenShape)
    {
        if (!WantMagnitude || !scale.requires_grad) return scale;
        record.Norm = LoraForwardRecord.Keep(norm);
        return GradientTapFunction.Apply(scale.expand(tokenShape), g => Replace(g, x => record.ScaleGradient = x, record.ScaleGradient));
    }

    // backward reaches each tap once per forward; a second visit (retain_graph) would be a new backward of the same graph
    private static void Replace(Tensor gradient, Action<Tensor> set, Tensor? previous)
    {
        previous?.Dispose();
        set(gradient);
    }

    /// <summary>Frees every record (their tensors) and starts again.</summary>
    public void Clear()
    {
        foreach (var r in _records) r.Dispose();
        _records.Clear();
    }

    public void Dispose() => Clear();
}
