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

/// <summary>CONTRACT (filled in by the accountant work): the one entry point training, verify and <c>finqlora privacy</c> share.</summary>
public static class PrivacyAccountant
{
    /// <summary>ε after <paramref name="steps"/> steps, each sampling every unit with probability <paramref name="sampleRate"/>
    /// and adding Gaussian noise of standard deviation <paramref name="noiseMultiplier"/> × the clipping norm.</summary>
    public static PrivacySpent Epsilon(AccountantKind kind, double sampleRate, double noiseMultiplier, long steps, double delta) =>
        throw new NotImplementedException();

    /// <summary>The smallest noise multiplier whose ε after <paramref name="steps"/> is at most <paramref name="targetEpsilon"/> (binary search).</summary>
    public static double NoiseMultiplierFor(AccountantKind kind, double targetEpsilon, double sampleRate, long steps, double delta) =>
        throw new NotImplementedException();

    /// <summary>The most steps whose ε stays at most <paramref name="maxEpsilon"/> (0 when even one step exceeds it).</summary>
    public static long MaxSteps(AccountantKind kind, double maxEpsilon, double sampleRate, double noiseMultiplier, double delta) =>
        throw new NotImplementedException();
}
