namespace FinQLoRA.Privacy.Accounting;

/// <summary>The one check of the accountants' arguments. Front ends (train, <c>finqlora privacy</c>) check the user's
/// values first and name their own flags; this guards the library against a caller's bug.</summary>
internal static class AccountingArguments
{
    public static void Check(double sampleRate, double noiseMultiplier, long steps, double delta)
    {
        if (!(sampleRate > 0 && sampleRate <= 1))
            throw new ArgumentOutOfRangeException(nameof(sampleRate), sampleRate, "the sample rate q is a probability in (0, 1]");
        if (!(noiseMultiplier > 0) || double.IsInfinity(noiseMultiplier))
            throw new ArgumentOutOfRangeException(nameof(noiseMultiplier), noiseMultiplier, "the noise multiplier σ is a finite number above 0");
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "at least one step is accounted");
        CheckDelta(delta);
    }

    public static void CheckDelta(double delta)
    {
        if (!(delta > 0 && delta < 1)) throw new ArgumentOutOfRangeException(nameof(delta), delta, "δ is in (0, 1)");
    }
}
