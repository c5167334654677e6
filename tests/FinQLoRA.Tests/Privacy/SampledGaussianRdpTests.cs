using FinQLoRA.Privacy.Accounting;

namespace FinQLoRA.Tests.Privacy;

/// <summary>The sampled Gaussian's RDP against its definition, A_α = ∫ μ₀(z)^{1−α} μ(z)^α dz with μ₀ = N(0, σ²) and
/// μ = (1 − q)μ₀ + q·N(1, σ²), integrated numerically here (trapezoid rule in log space): an implementation that shares
/// nothing with the series, for integer and fractional orders, q up to 0.99 and σ from 0.3 to 100.</summary>
public sealed class SampledGaussianRdpTests
{
    [Theory]
    [InlineData(0.01, 1.1, 2.0)]
    [InlineData(0.01, 1.1, 2.5)]
    [InlineData(256 / 60000.0, 1.1, 8.8)]
    [InlineData(256 / 60000.0, 1.1, 32.0)]
    [InlineData(0.1, 0.5, 3.3)]
    [InlineData(0.5, 2.0, 10.9)]
    [InlineData(0.99, 0.3, 1.5)]
    [InlineData(0.3, 0.3, 63.0)]
    [InlineData(0.2, 0.3, 5.7)]
    [InlineData(0.001, 100.0, 63.0)]
    [InlineData(0.05, 100.0, 1.1)]
    public void SeriesEqualsTheDefiningIntegral(double q, double sigma, double alpha)
    {
        double series = SampledGaussianRdp.Rdp(q, sigma, alpha);
        double integral = RdpByIntegration(q, sigma, alpha);
        Assert.True(Math.Abs(series - integral) <= 1e-7 * integral + 1e-12, $"RDP({alpha}) = {series:R}, the integral {integral:R}");
    }

    [Theory]
    [InlineData(1.0, 2.0)]
    [InlineData(0.7, 10.9)]
    [InlineData(3.0, 63.0)]
    public void WithoutSubsamplingItIsTheGaussianMechanismsAlphaOverTwoSigmaSquared(double sigma, double alpha)
    {
        double exact = alpha / (2 * sigma * sigma);
        Assert.Equal(exact, SampledGaussianRdp.Rdp(1.0, sigma, alpha), 12);
        // and the subsampled formulas tend to it as q → 1, for integer and fractional orders alike
        Assert.Equal(exact, SampledGaussianRdp.Rdp(1 - 1e-12, sigma, alpha), 6);
        Assert.Equal((alpha + 0.5) / (2 * sigma * sigma), SampledGaussianRdp.Rdp(1 - 1e-12, sigma, alpha + 0.5), 6);
    }

    [Fact]
    public void HugeNoiseSpendsAlmostNothing()
    {
        double rdp = SampledGaussianRdp.Rdp(0.01, 100, 10);
        Assert.InRange(rdp, 0, 1e-7);
        // RDP's ε cannot fall below the conversion's log(1/δ)/(α − 1) at the largest order, 63; PRV's is near the
        // Gaussian-DP value for μ = q·√(T·(e^{1/σ²} − 1)) ≈ 0.0032, about 0.014, plus its ε_err
        Assert.InRange(RdpAccountant.Epsilon(0.01, 100, 1000, 1e-5).Epsilon, 0, 0.11);
        Assert.InRange(PrvAccountant.Epsilon(0.01, 100, 1000, 1e-5).Epsilon, 0, 0.03);
    }

    /// <summary>log A_α/(α − 1) by the trapezoid rule on a grid of σ/400 covering both Gaussians' modes and the
    /// integrand's, which sits near z = α (the integrand is ∝ e^{−(z² − 2αz)/(2σ²)} there).</summary>
    private static double RdpByIntegration(double q, double sigma, double alpha)
    {
        double lo = -14 * sigma, hi = Math.Max(1, alpha) + 14 * sigma, h = sigma / 400;
        int n = (int)Math.Ceiling((hi - lo) / h);
        double logNorm = -Math.Log(sigma * Math.Sqrt(2 * Math.PI)), s2 = 2 * sigma * sigma;
        var logTerms = new double[n + 1];
        for (int i = 0; i <= n; i++)
        {
            double z = lo + i * h;
            double log0 = logNorm - z * z / s2, log1 = logNorm - (z - 1) * (z - 1) / s2;
            double logMixture = Math.Max(Math.Log(1 - q) + log0, Math.Log(q) + log1);
            logMixture += Math.Log(1 + Math.Exp(Math.Min(Math.Log(1 - q) + log0, Math.Log(q) + log1) - logMixture));
            logTerms[i] = (1 - alpha) * log0 + alpha * logMixture + Math.Log(h) + (i == 0 || i == n ? Math.Log(0.5) : 0);
        }
        double max = logTerms.Max();
        double logA = max + Math.Log(logTerms.Sum(t => Math.Exp(t - max)));
        return logA / (alpha - 1);
    }
}
