using FinQLoRA.Privacy.Accounting;

namespace FinQLoRA.Tests.Privacy;

/// <summary>The inverse questions answered by <see cref="PrivacyAccountant"/> agree with its ε: the noise multiplier for
/// a target ε spends at most that ε and within 1 % of it, and the step budget is exact (T fits, T + 1 does not).</summary>
public sealed class PrivacyAccountantTests
{
    private const double SampleRate = 0.01, Delta = 1e-5;

    [Theory]
    [InlineData(AccountantKind.Rdp, 2.0, 1000L)]
    [InlineData(AccountantKind.Rdp, 8.0, 300L)]
    [InlineData(AccountantKind.Prv, 2.0, 1000L)]
    [InlineData(AccountantKind.Prv, 8.0, 300L)]
    public void TheNoiseForATargetEpsilonRoundTrips(AccountantKind kind, double target, long steps)
    {
        double sigma = PrivacyAccountant.NoiseMultiplierFor(kind, target, SampleRate, steps, Delta);
        double spent = PrivacyAccountant.Epsilon(kind, SampleRate, sigma, steps, Delta).Epsilon;
        Assert.InRange(spent, 0.99 * target, target);
        // and it is the smallest such σ, to the search's precision (RDP's ε falls strictly with σ)
        if (kind == AccountantKind.Rdp)
            Assert.True(PrivacyAccountant.Epsilon(kind, SampleRate, sigma - 2 * NoiseSolver.NoisePrecision, steps, Delta).Epsilon > target);
    }

    [Fact]
    public void PrvNeedsLessNoiseThanRdpForTheSameTarget()
    {
        double rdp = PrivacyAccountant.NoiseMultiplierFor(AccountantKind.Rdp, 3.0, SampleRate, 1000, Delta);
        double prv = PrivacyAccountant.NoiseMultiplierFor(AccountantKind.Prv, 3.0, SampleRate, 1000, Delta);
        Assert.True(prv < rdp, $"prv σ {prv}, rdp σ {rdp}");
    }

    [Theory]
    [InlineData(AccountantKind.Rdp)]
    [InlineData(AccountantKind.Prv)]
    public void MaxStepsIsTheLastStepWithinTheBudget(AccountantKind kind)
    {
        const double sigma = 1.0, budget = 1.5;
        long steps = PrivacyAccountant.MaxSteps(kind, budget, SampleRate, sigma, Delta);
        Assert.True(steps > 1, $"{steps}");
        Assert.True(PrivacyAccountant.Epsilon(kind, SampleRate, sigma, steps, Delta).Epsilon <= budget);
        Assert.True(PrivacyAccountant.Epsilon(kind, SampleRate, sigma, steps + 1, Delta).Epsilon > budget);
    }

    [Fact]
    public void MaxStepsIsZeroWhenOneStepAlreadyExceedsTheBudget()
    {
        // no subsampling and little noise: a single step costs ε ≈ 17 at δ = 1e-5
        Assert.Equal(0, PrivacyAccountant.MaxSteps(AccountantKind.Rdp, 0.5, 1.0, 0.3, Delta));
        Assert.Equal(0, PrivacyAccountant.MaxSteps(AccountantKind.Prv, 0.5, 1.0, 0.3, Delta));
    }

    [Fact]
    public void ATargetNoNoiseCanMeetIsRefusedWithTheReason()
    {
        var e = Assert.Throws<UserInputException>(() => PrivacyAccountant.NoiseMultiplierFor(AccountantKind.Rdp, 1e-4, 1.0, 10_000, Delta));
        Assert.Contains("not met even with noise multiplier 1000", e.Message);
    }

    [Fact]
    public void BadArgumentsAreRefusedByName()
    {
        Assert.Equal("sampleRate", Assert.Throws<ArgumentOutOfRangeException>(() => PrivacyAccountant.Epsilon(AccountantKind.Rdp, 0, 1, 10, Delta)).ParamName);
        Assert.Equal("noiseMultiplier", Assert.Throws<ArgumentOutOfRangeException>(() => PrivacyAccountant.Epsilon(AccountantKind.Prv, 0.1, -1, 10, Delta)).ParamName);
        Assert.Equal("steps", Assert.Throws<ArgumentOutOfRangeException>(() => PrivacyAccountant.Epsilon(AccountantKind.Rdp, 0.1, 1, 0, Delta)).ParamName);
        Assert.Equal("delta", Assert.Throws<ArgumentOutOfRangeException>(() => PrivacyAccountant.Epsilon(AccountantKind.Rdp, 0.1, 1, 10, 1)).ParamName);
    }
}
