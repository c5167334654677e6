using FinQLoRA.Options;

namespace FinQLoRA.Privacy.Accounting;

/// <summary>How the privacy spent by DP-SGD is counted.</summary>
public enum AccountantKind
{
    /// <summary>Privacy random variables composed numerically (Gopi, Lee, Wutschitz 2021): the tightest, the default.</summary>
    Prv,
    /// <summary>Rényi DP of the sampled Gaussian mechanism (Mironov, Talwar, Zhang 2019) with Balle et al.'s (2020) conversion.</summary>
    Rdp,
}

public static class AccountantKinds
{
    public static NamedValues<AccountantKind> Spellings { get; } = new((AccountantKind.Prv, ["prv"]), (AccountantKind.Rdp, ["rdp"]));
}

/// <summary>ε after some steps of the Poisson-subsampled Gaussian mechanism at (ε, δ).</summary>
/// <param name="OptimalOrder">the Rényi order that gave ε (RDP only)</param>
public sealed record PrivacySpent(double Epsilon, double Delta, double? OptimalOrder);

/// <summary>The one entry point training, verify and <c>finqlora privacy</c> share: <see cref="RdpAccountant"/> (tight
/// conversion) or <see cref="PrvAccountant"/> (its upper bound), and the searches of <see cref="NoiseSolver"/> on them.</summary>
public static class PrivacyAccountant
{
    /// <summary>ε after <paramref name="steps"/> steps, each sampling every unit with probability <paramref name="sampleRate"/>
    /// and adding Gaussian noise of standard deviation <paramref name="noiseMultiplier"/> × the clipping norm.</summary>
    public static PrivacySpent Epsilon(AccountantKind kind, double sampleRate, double noiseMultiplier, long steps, double delta) => kind switch
    {
        AccountantKind.Rdp => RdpAccountant.Epsilon(sampleRate, noiseMultiplier, steps, delta),
        AccountantKind.Prv => PrvAccountant.Epsilon(sampleRate, noiseMultiplier, steps, delta),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>The smallest noise multiplier whose ε after <paramref name="steps"/> is at most <paramref name="targetEpsilon"/> (binary search).</summary>
    public static double NoiseMultiplierFor(AccountantKind kind, double targetEpsilon, double sampleRate, long steps, double delta)
    {
        if (!(targetEpsilon > 0) || double.IsInfinity(targetEpsilon))
            throw new ArgumentOutOfRangeException(nameof(targetEpsilon), targetEpsilon, "a target ε is a finite number above 0");
        AccountingArguments.Check(sampleRate, 1, steps, delta);
        double rdp = NoiseSolver.NoiseMultiplierFor(s => RdpAccountant.Epsilon(sampleRate, s, steps, delta).Epsilon, targetEpsilon);
        if (kind == AccountantKind.Rdp) return rdp;
        // PRV is the tighter of the two, so its σ lies at or below RDP's: the search starts there
        return NoiseSolver.NoiseMultiplierFor(s => PrvAccountant.Epsilon(sampleRate, s, steps, delta).Epsilon, targetEpsilon, startAt: rdp);
    }

    /// <summary>The most steps whose ε stays at most <paramref name="maxEpsilon"/> (0 when even one step exceeds it).</summary>
    public static long MaxSteps(AccountantKind kind, double maxEpsilon, double sampleRate, double noiseMultiplier, double delta)
    {
        if (!(maxEpsilon > 0)) throw new ArgumentOutOfRangeException(nameof(maxEpsilon), maxEpsilon, "a privacy budget ε is above 0");
        AccountingArguments.Check(sampleRate, noiseMultiplier, 1, delta);
        long rdp = NoiseSolver.MaxSteps(t => RdpAccountant.Epsilon(sampleRate, noiseMultiplier, t, delta).Epsilon, maxEpsilon);
        if (kind == AccountantKind.Rdp) return rdp;
        // PRV allows at least as many steps as RDP wherever its error bar is below RDP's slack: start the search there
        Func<long, double> prv = t => PrvAccountant.Epsilon(sampleRate, noiseMultiplier, t, delta).Epsilon;
        long start = rdp > 0 && prv(rdp) <= maxEpsilon ? rdp : 0;
        return NoiseSolver.MaxSteps(prv, maxEpsilon, atLeast: start);
    }
}
