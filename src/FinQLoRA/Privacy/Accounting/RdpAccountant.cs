using System.Collections.Concurrent;

namespace FinQLoRA.Privacy.Accounting;

/// <summary>
/// The RDP accountant: T steps of the sampled Gaussian mechanism compose to T·RDP(α) at every order α (Mironov 2017,
/// proposition 1), each order is converted to (ε, δ) and the smallest ε wins. The orders are TF Privacy's and
/// Opacus' defaults: 1.1 to 10.9 by 0.1, then 12 to 63.
/// </summary>
public static class RdpAccountant
{
    /// <summary>The Rényi orders searched.</summary>
    public static IReadOnlyList<double> Orders { get; } =
        [.. Enumerable.Range(1, 99).Select(x => 1 + x / 10.0), .. Enumerable.Range(12, 52).Select(a => (double)a)];

    // The trainer asks for ε at every logged step with the same q and σ, and the solvers revisit σ values: one step's
    // RDP at every order is computed once per (q, σ). Bounded so a long search cannot grow it without end.
    private static readonly ConcurrentDictionary<(double Q, double Sigma), double[]> PerStepCache = new();
    private const int CacheLimit = 256;

    /// <summary>(ε, δ) after <paramref name="steps"/> steps, with the order that gave ε.</summary>
    public static PrivacySpent Epsilon(double sampleRate, double noiseMultiplier, long steps, double delta,
        RdpConversion conversion = RdpConversion.Tight)
    {
        AccountingArguments.Check(sampleRate, noiseMultiplier, steps, delta);
        double[] perStep = PerStep(sampleRate, noiseMultiplier);
        double best = double.PositiveInfinity, bestOrder = Orders[0];
        for (int k = 0; k < perStep.Length; k++)
        {
            double eps = Convert(steps * perStep[k], Orders[k], delta, conversion);
            if (eps < best) (best, bestOrder) = (eps, Orders[k]);
        }
        // a negative ε (tiny RDP, large δ) says no more than ε = 0
        return new PrivacySpent(Math.Max(best, 0), delta, bestOrder);
    }

    /// <summary>ε at one order from the composed RDP <paramref name="rdp"/>.</summary>
    public static double Convert(double rdp, double order, double delta, RdpConversion conversion) => conversion switch
    {
        RdpConversion.Classical => rdp - Math.Log(delta) / (order - 1),
        RdpConversion.Tight => rdp + Math.Log((order - 1) / order) - (Math.Log(delta) + Math.Log(order)) / (order - 1),
        _ => throw new ArgumentOutOfRangeException(nameof(conversion), conversion, null),
    };

    /// <summary>One step's RDP at each of <see cref="Orders"/>.</summary>
    internal static double[] PerStep(double sampleRate, double noiseMultiplier)
    {
        if (PerStepCache.TryGetValue((sampleRate, noiseMultiplier), out double[]? cached)) return cached;
        double[] rdp = [.. Orders.Select(a => SampledGaussianRdp.Rdp(sampleRate, noiseMultiplier, a))];
        if (PerStepCache.Count >= CacheLimit) PerStepCache.Clear();
        PerStepCache[(sampleRate, noiseMultiplier)] = rdp;
        return rdp;
    }
}
