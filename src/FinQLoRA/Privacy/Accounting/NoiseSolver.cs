namespace FinQLoRA.Privacy.Accounting;

/// <summary>
/// The inverse questions, by search on the accountant itself, so whatever σ or T they return has been checked:
/// the noise multiplier for a target ε (a bracket in σ narrowed to 0.001, finer than Opacus' <c>get_noise_multiplier</c>),
/// and the most steps within a budget (doubling, then a bracket in T narrowed to one step). Each PRV evaluation costs a
/// composition, so the brackets are narrowed by false position (Illinois variant), which needs a handful of them where
/// bisection needs a dozen. ε falls with σ and grows with T; the searches keep
/// "ε ≤ target" true at one end and false at the other, so the answer is right even where round-off in the PRV
/// grid makes ε wobble by less than its error bars.
/// </summary>
internal static class NoiseSolver
{
    /// <summary>The search for σ stops when the bracket is this narrow.</summary>
    public const double NoisePrecision = 1e-3;
    /// <summary>σ below this is not searched: ε there is hundreds for any useful q and T.</summary>
    public const double SmallestNoise = 0.1;
    public const double LargestNoise = 1000;

    public static double NoiseMultiplierFor(Func<double, double> epsilonAt, double targetEpsilon, double? startAt = null)
    {
        double hi = startAt ?? 1.0, lo;
        if (epsilonAt(hi) <= targetEpsilon)
        {
            lo = hi;
            do
            {
                hi = lo;
                lo = Math.Max(SmallestNoise, hi * 0.8);
                if (hi == SmallestNoise)
                    throw new UserInputException($"target ε {targetEpsilon} is met even with noise multiplier {SmallestNoise} (ε = {epsilonAt(SmallestNoise):0.###}); give a noise multiplier instead, or a smaller target ε");
            } while (epsilonAt(lo) <= targetEpsilon);
        }
        else
        {
            do
            {
                lo = hi;
                hi = Math.Min(LargestNoise, lo * 2);
                if (lo == LargestNoise)
                    throw new UserInputException($"target ε {targetEpsilon} is not met even with noise multiplier {LargestNoise}; raise the target ε or δ, or take fewer steps or a lower sample rate");
            } while (epsilonAt(hi) > targetEpsilon);
        }
        // ε(lo) > target ≥ ε(hi)
        var bracket = new FalsePosition(lo, epsilonAt(lo) - targetEpsilon, hi, epsilonAt(hi) - targetEpsilon);
        while (bracket.Width > NoisePrecision)
        {
            double next = bracket.Next(NoisePrecision / 2);
            bracket.Narrow(next, epsilonAt(next) - targetEpsilon);
        }
        return bracket.Fits;
    }

    /// <summary>The largest T ≥ <paramref name="atLeast"/> with ε(T) ≤ max, given ε(atLeast) ≤ max (0 for none).</summary>
    public static long MaxSteps(Func<long, double> epsilonAfter, double maxEpsilon, long atLeast = 0)
    {
        const long limit = 1L << 62;
        long ok = atLeast, over = atLeast == 0 ? 1 : Math.Min(limit, 2 * atLeast);
        // ε(ok) ≤ max (T = 0 spends nothing); double until a T exceeds it
        while (epsilonAfter(over) <= maxEpsilon)
        {
            ok = over;
            if (over >= limit) return ok;
            over *= 2;
        }
        if (over - ok <= 1) return ok;
        var bracket = new FalsePosition(over, epsilonAfter(over) - maxEpsilon, ok, ok == 0 ? -maxEpsilon : epsilonAfter(ok) - maxEpsilon);
        while (bracket.Width > 1)
        {
            long next = Math.Clamp((long)Math.Round(bracket.Next(1)), (long)bracket.Fits + 1, (long)bracket.Exceeds - 1);
            bracket.Narrow(next, epsilonAfter(next) - maxEpsilon);
        }
        return (long)bracket.Fits;
    }
}
