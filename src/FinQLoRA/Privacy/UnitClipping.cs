using static TorchSharp.torch;

namespace FinQLoRA.Privacy;

/// <summary>
/// DP-SGD's clipping: each unit's gradient, all adapter parameters jointly, scaled to ℓ2 norm at most C by
/// min(1, C / (‖g‖ + 1e-6)) (Opacus' factor), and summed. Keeps the running sum and how many units were clipped.
/// </summary>
internal sealed class UnitClipping : IDisposable
{
    private readonly double _maxNorm;

    public UnitClipping(IReadOnlyList<Tensor> like, double maxNorm)
    {
        _maxNorm = maxNorm;
        Sum = [.. like.Select(p =>
        {
            var z = zeros_like(p, ScalarType.Float32);
            z.DetachFromDisposeScope();
            return z;
        })];
    }

    /// <summary>Σ of the clipped unit gradients, one tensor per parameter.</summary>
    public Tensor[] Sum { get; }
    public int Units { get; private set; }
    /// <summary>Units whose norm exceeded C.</summary>
    public int Clipped { get; private set; }

    /// <summary>Adds units' gradients ([k, …parameter shape] each); returns their norms before clipping [k].</summary>
    public double[] Add(IReadOnlyList<Tensor> unitGradients)
    {
        using var scope = NewDisposeScope();
        long k = unitGradients[0].shape[0];
        var flat = unitGradients.Select(g => g.reshape(k, -1)).ToList();
        var norms = flat.Select(f => f.square().sum(1)).Aggregate((a, b) => a + b).sqrt();   // [k]
        var factor = (_maxNorm / (norms + 1e-6)).clamp_max(1.0);                                  // [k]
        for (int p = 0; p < Sum.Length; p++)
            Sum[p].add_(factor.matmul(flat[p]).reshape(Sum[p].shape));
        var values = norms.to(ScalarType.Float64).cpu().data<double>().ToArray();
        Units += values.Length;
        Clipped += values.Count(n => n > _maxNorm);
        return values;
    }

    public void Dispose()
    {
        foreach (var s in Sum) s.Dispose();
    }
}
