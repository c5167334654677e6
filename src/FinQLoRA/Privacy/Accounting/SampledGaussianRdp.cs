namespace FinQLoRA.Privacy.Accounting;

/// <summary>
/// Rényi DP of one step of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar, Zhang 2019, "Rényi Differential
/// Privacy of the Sampled Gaussian Mechanism", section 3.3): with μ₀ = N(0, σ²) and μ = (1 − q)·μ₀ + q·N(1, σ²),
/// RDP(α) = log A_α / (α − 1), A_α = E_{z∼μ₀}[(μ(z)/μ₀(z))^α]. Integer α: the binomial expansion
/// A_α = Σ_i C(α, i)(1 − q)^{α−i} q^i e^{(i² − i)/(2σ²)}. Fractional α: their two infinite series split at
/// z₀ = σ² log(1/q − 1) + ½, whose terms carry erfc tails. Everything is summed in log space, so σ = 0.3 at order 63
/// (terms near e^{20000}) and q → 1 stay finite.
/// </summary>
public static class SampledGaussianRdp
{
    /// <summary>A term of the fractional series this small (log) ends it, as in TF Privacy and Opacus; the series' terms
    /// fall only polynomially (as i^{−α−2}) because the Gaussian factors cancel, so low orders need thousands of terms.</summary>
    private const double LogTermCutoff = -30;
    private const int MaxTerms = 10_000_000;

    /// <summary>RDP of one step at order <paramref name="alpha"/> (&gt; 1).</summary>
    public static double Rdp(double sampleRate, double noiseMultiplier, double alpha)
    {
        if (!(alpha > 1)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "a Rényi order is above 1");
        if (!(sampleRate is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(sampleRate), sampleRate, "a sample rate is in [0, 1]");
        if (!(noiseMultiplier > 0)) throw new ArgumentOutOfRangeException(nameof(noiseMultiplier), noiseMultiplier, "a noise multiplier is above 0");
        if (sampleRate == 0) return 0;
        // no subsampling: the Gaussian mechanism of sensitivity 1, RDP α/(2σ²) (Mironov 2017, proposition 7)
        if (sampleRate == 1) return alpha / (2 * noiseMultiplier * noiseMultiplier);
        double logA = alpha == Math.Floor(alpha) && alpha < int.MaxValue
            ? LogAIntegerOrder(sampleRate, noiseMultiplier, (int)alpha)
            : LogAFractionalOrder(sampleRate, noiseMultiplier, alpha);
        return logA / (alpha - 1);
    }

    private static double LogAIntegerOrder(double q, double sigma, int alpha)
    {
        double logQ = Math.Log(q), log1MinusQ = LogSpace.Log1p(-q), twoSigmaSquared = 2 * sigma * sigma;
        double logA = double.NegativeInfinity, logBinomial = 0; // log C(α, 0)
        for (int i = 0; i <= alpha; i++)
        {
            if (i > 0) logBinomial += Math.Log(alpha - i + 1) - Math.Log(i);
            double term = logBinomial + i * logQ + (alpha - i) * log1MinusQ + ((double)i * i - i) / twoSigmaSquared;
            logA = LogSpace.Add(logA, term);
        }
        return logA;
    }

    private static double LogAFractionalOrder(double q, double sigma, double alpha)
    {
        double logQ = Math.Log(q), log1MinusQ = LogSpace.Log1p(-q), twoSigmaSquared = 2 * sigma * sigma;
        double z0 = sigma * sigma * (log1MinusQ - logQ) + 0.5, erfcScale = Math.Sqrt(2) * sigma, logHalf = Math.Log(0.5);
        var below = SignedLogSum.Empty; // the series over z ≤ z₀
        var above = SignedLogSum.Empty; // the series over z > z₀
        double logCoefficient = 0; // log |C(α, i)|, generalised binomial
        bool negative = false;     // sign of C(α, i): flips at every i past α
        for (int i = 0; i < MaxTerms; i++)
        {
            if (i > 0)
            {
                double ratio = (alpha - (i - 1)) / i; // C(α, i) = C(α, i−1)·(α − i + 1)/i
                logCoefficient += Math.Log(Math.Abs(ratio));
                if (ratio < 0) negative = !negative;
            }
            double j = alpha - i;
            double logS0 = logCoefficient + i * logQ + j * log1MinusQ + ((double)i * i - i) / twoSigmaSquared
                + logHalf + ErrorFunction.LogErfc((i - z0) / erfcScale);
            double logS1 = logCoefficient + j * logQ + i * log1MinusQ + (j * j - j) / twoSigmaSquared
                + logHalf + ErrorFunction.LogErfc((z0 - j) / erfcScale);
            below.Add(negative, logS0);
            above.Add(negative, logS1);
            if (Math.Max(logS0, logS1) < LogTermCutoff) return LogSpace.Add(below.Log, above.Log);
        }
        throw new InvalidOperationException($"the RDP series of order {alpha} (q = {q}, σ = {sigma}) did not converge in {MaxTerms} terms");
    }
}
