using FinQLoRA.Privacy.Accounting;

namespace FinQLoRA.Tests.Privacy;

/// <summary>The PRV accountant against exact answers: without subsampling T Gaussian steps are exactly μ-GDP with
/// μ = √T/σ (Dong, Roth, Su 2022, corollary 3.3), and one subsampled step has a closed-form δ(ε); ε solved from those
/// by bisection here must lie within the accountant's error bars.</summary>
public sealed class PrvAccountantTests
{
    [Theory]
    [InlineData(10.0, 100L, 1e-5)]   // μ = 1
    [InlineData(50.0, 1000L, 1e-6)]  // μ ≈ 0.63
    [InlineData(2.0, 16L, 1e-5)]     // μ = 2
    public void WithoutSubsamplingItMatchesGaussianDp(double sigma, long steps, double delta)
    {
        double mu = Math.Sqrt(steps) / sigma;
        // δ(ε) of μ-GDP: Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2)
        double exact = SolveDecreasing(e => ErrorFunction.NormalCdf(-e / mu + mu / 2) - Math.Exp(e) * ErrorFunction.NormalCdf(-e / mu - mu / 2), delta);
        AssertWithinBounds(PrvAccountant.Bounds(1.0, sigma, steps, delta), exact);
    }

    [Theory]
    [InlineData(0.01, 0.5, 1e-5)]
    [InlineData(0.2, 1.0, 1e-6)]
    [InlineData(256 / 60000.0, 0.7, 1e-5)]
    public void OneSubsampledStepMatchesItsClosedForm(double q, double sigma, double delta)
    {
        // P = (1 − q)N(0, σ²) + qN(1, σ²), Q = N(0, σ²); the loss exceeds ε exactly where z > z(ε), so
        // δ(ε) = P(z > z(ε)) − e^ε·Q(z > z(ε)), z(ε) = σ²·log((e^ε − 1 + q)/q) + ½
        double Delta(double e)
        {
            double z = sigma * sigma * Math.Log((Math.Exp(e) - 1 + q) / q) + 0.5;
            double tailQ = ErrorFunction.NormalCdf(-z / sigma), tailShifted = ErrorFunction.NormalCdf(-(z - 1) / sigma);
            return (1 - q) * tailQ + q * tailShifted - Math.Exp(e) * tailQ;
        }
        AssertWithinBounds(PrvAccountant.Bounds(q, sigma, 1, delta), SolveDecreasing(Delta, delta));
    }

    [Fact]
    public void TheBoundsAreOrderedAndTwoEpsilonErrorsApart()
    {
        var b = PrvAccountant.Bounds(0.02, 1.0, 500, 1e-5);
        Assert.True(b.Lower <= b.Estimate && b.Estimate <= b.Upper, b.ToString());
        Assert.InRange(b.Upper - b.Lower, 0.02, 0.021); // ε_err each side, and the δ_err slack
        Assert.Equal(b.Upper, PrvAccountant.Epsilon(0.02, 1.0, 500, 1e-5).Epsilon);
    }

    private static void AssertWithinBounds(PrvEpsilon bounds, double exact)
    {
        Assert.True(bounds.Lower <= exact && exact <= bounds.Upper, $"exact ε {exact:R} outside {bounds}");
        Assert.True(Math.Abs(bounds.Estimate - exact) <= PrvAccountant.DefaultEpsilonError, $"estimate {bounds.Estimate:R}, exact {exact:R}");
    }

    /// <summary>The ε in [0, 200] where the decreasing <paramref name="delta"/>(ε) crosses <paramref name="target"/>.</summary>
    private static double SolveDecreasing(Func<double, double> delta, double target)
    {
        double lo = 0, hi = 200;
        for (int i = 0; i < 200; i++)
        {
            double mid = 0.5 * (lo + hi);
            if (delta(mid) > target) lo = mid; else hi = mid;
        }
        return 0.5 * (lo + hi);
    }
}
