namespace FinQLoRA.Privacy.Accounting;

/// <summary>
/// A bracket [fits, exceeds] around the root of a monotone f (f(fits) ≤ 0 &lt; f(exceeds)), narrowed by false position
/// with the Illinois modification: when the same end survives twice, its f is halved, so both ends close in
/// superlinearly instead of one end staying put. Points are kept at least <c>margin</c> inside the ends, so the
/// bracket also closes when the root sits at one of them.
/// </summary>
internal sealed class FalsePosition(double exceeds, double fExceeds, double fits, double fFits)
{
    private int _lastMoved; // +1: the fitting end moved last, −1: the exceeding end, 0: neither yet

    /// <summary>The end where f ≤ 0: the answer.</summary>
    public double Fits { get; private set; } = fits;
    /// <summary>The end where f &gt; 0.</summary>
    public double Exceeds { get; private set; } = exceeds;
    public double Width => Math.Abs(Exceeds - Fits);

    /// <summary>Where the chord crosses zero, at least <paramref name="margin"/> inside both ends.</summary>
    public double Next(double margin)
    {
        double x = Fits - fFits * (Exceeds - Fits) / (fExceeds - fFits);
        if (!double.IsFinite(x)) x = 0.5 * (Fits + Exceeds);
        double lo = Math.Min(Fits, Exceeds) + margin, hi = Math.Max(Fits, Exceeds) - margin;
        return lo > hi ? 0.5 * (Fits + Exceeds) : Math.Clamp(x, lo, hi);
    }

    public void Narrow(double x, double fx)
    {
        if (fx <= 0)
        {
            (Fits, fFits) = (x, fx);
            if (_lastMoved == +1) fExceeds /= 2;
            _lastMoved = +1;
        }
        else
        {
            (Exceeds, fExceeds) = (x, fx);
            if (_lastMoved == -1) fFits /= 2;
            _lastMoved = -1;
        }
    }
}
