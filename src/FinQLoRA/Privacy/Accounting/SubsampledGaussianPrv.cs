using static TorchSharp.torch;

namespace FinQLoRA.Privacy.Accounting;

/// <summary>
/// The privacy loss random variable of one step of the Poisson-subsampled Gaussian mechanism (Gopi, Lee, Wutschitz
/// 2021, appendix B). In units of the noise (μ = 1/σ), P = (1 − q)·N(0, 1) + q·N(μ, 1) and Q = N(0, 1); the loss
/// L(x) = log P(x)/Q(x) = log(1 − q + q·e^{μx − μ²/2}) is increasing in x, so with x(t) = σ·log((e^t − 1 + q)/q) + 1/(2σ)
/// its distribution function is P(L ≤ t) = (1 − q)·Φ(x(t)) + q·Φ(x(t) − μ) for t &gt; log(1 − q), and 0 below.
/// </summary>
internal sealed class SubsampledGaussianPrv(double sampleRate, double noiseMultiplier)
{
    private readonly double _q = sampleRate, _sigma = noiseMultiplier, _mu = 1 / noiseMultiplier;

    /// <summary>The least value the loss takes, log(1 − q) (−∞ without subsampling).</summary>
    public double Lowest => _q == 1 ? double.NegativeInfinity : LogSpace.Log1p(-_q);

    /// <summary>
    /// The probabilities of the grid's cells [t_i − dt/2, t_i + dt/2] for the loss truncated to [t_0, t_{N−1}], summing
    /// to 1 (float64, on the CPU; the caller's dispose scope owns it). A cell in the upper half is the difference of
    /// survival functions, not of distribution functions near 1, so the tail that δ is made of keeps its digits.
    /// </summary>
    public Tensor CellProbabilities(PrvDomain domain)
    {
        int n = domain.Size;
        Tensor edges = (arange(n + 1, ScalarType.Float64) * domain.Step + (domain.Min - domain.Step / 2))
            .clamp(domain.Min, domain.Max);
        Tensor shifted = expm1(edges) + _q; // e^t − 1 + q: positive exactly where the loss can reach t
        Tensor valid = shifted > 0;
        Tensor x = (shifted.clamp_min(double.Epsilon).log() - Math.Log(_q)) * _sigma + 0.5 / _sigma;
        Tensor below = Phi(x) * (1 - _q) + Phi(x - _mu) * _q;   // P(L ≤ t)
        Tensor above = Phi(-x) * (1 - _q) + Phi(_mu - x) * _q;  // P(L > t)
        below = where(valid, below, 0.0);
        above = where(valid, above, 1.0);
        Tensor lowerHalf = below.narrow(0, 0, n) < 0.5;
        Tensor cells = where(lowerHalf, below.narrow(0, 1, n) - below.narrow(0, 0, n), above.narrow(0, 0, n) - above.narrow(0, 1, n));
        return cells / cells.sum();
    }

    /// <summary>E[L | a ≤ L ≤ b], integrated in x by Simpson's rule. The mean of the discretised loss is moved onto
    /// this one (as Gopi et al. do), so that rounding to the grid adds no drift over T compositions.</summary>
    public double TruncatedMean(double a, double b)
    {
        // beyond 14 standard deviations from both components the mixture has mass below 1e-44
        double lo = Math.Max(a <= Lowest ? double.NegativeInfinity : X(a), -14);
        double hi = Math.Min(X(b), _mu + 14);
        if (!(hi > lo)) throw new InvalidOperationException($"the PRV grid [{a}, {b}] holds no mass (q = {_q}, σ = {_sigma})");
        const int intervals = 20_000;
        double h = (hi - lo) / intervals, logQ = Math.Log(_q), log1MinusQ = Lowest;
        double weightedLoss = 0, mass = 0;
        for (int i = 0; i <= intervals; i++)
        {
            double x = lo + i * h;
            double w = i == 0 || i == intervals ? 1 : i % 2 == 1 ? 4 : 2;
            double density = (1 - _q) * Math.Exp(-0.5 * x * x) + _q * Math.Exp(-0.5 * (x - _mu) * (x - _mu));
            double loss = LogSpace.Add(log1MinusQ, logQ + _mu * x - 0.5 * _mu * _mu);
            weightedLoss += w * loss * density;
            mass += w * density;
        }
        return weightedLoss / mass;
    }

    /// <summary>Φ by erfc: libtorch's <c>special.ndtr</c> computes ½(1 + erf(x/√2)) and so returns 6.1e-16 for Φ(−8)
    /// (truly 6.2e-16) and 0 from about −9 down, the very tail δ is made of.</summary>
    private static Tensor Phi(Tensor x) => special.erfc(x * -Math.Sqrt(0.5)) * 0.5;

    private double X(double t) => _sigma * (Math.Log(LogSpace.Expm1(t) + _q) - Math.Log(_q)) + 0.5 / _sigma;
}
