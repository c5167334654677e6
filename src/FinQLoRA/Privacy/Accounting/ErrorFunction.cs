namespace FinQLoRA.Privacy.Accounting;

/// <summary>The complementary error function and its logarithm to double precision, deep into the tail (erfc(30) ≈
/// 1e-393 underflows; its log does not), which the fractional-order RDP series needs. .NET has no erfc.
/// Below x = 2 a Taylor series of erf with positive terms only (no cancellation); from 2 up the continued fraction
/// erfc(x) = e^{−x²}/√π · 1/(x + ½/(x + 1/(x + 3/2/(x + …)))) (Abramowitz and Stegun 7.1.14), evaluated by Lentz's method.</summary>
internal static class ErrorFunction
{
    private const double SeriesLimit = 2.0;
    private static readonly double LogSqrtPi = 0.5 * Math.Log(Math.PI);

    public static double Erfc(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        if (x < 0) return 2.0 - Erfc(-x);
        if (x < SeriesLimit) return 1.0 - Erf(x);
        return Math.Exp(-x * x - LogSqrtPi) * ContinuedFraction(x);
    }

    /// <summary>log erfc(x), finite for every finite x.</summary>
    public static double LogErfc(double x)
    {
        if (x < SeriesLimit) return Math.Log(Erfc(x));
        return -x * x - LogSqrtPi + Math.Log(ContinuedFraction(x));
    }

    /// <summary>Φ(x), the standard normal distribution function; 1 − Φ(x) is <c>NormalCdf(−x)</c> and as accurate.</summary>
    public static double NormalCdf(double x) => 0.5 * Erfc(-x / Math.Sqrt(2.0));

    /// <summary>erf(x) for 0 ≤ x &lt; 2: (2/√π)·x·e^{−x²}·Σ (2x²)^n / (1·3·…·(2n+1)) (A&amp;S 7.1.6).</summary>
    private static double Erf(double x)
    {
        double twoXSquared = 2 * x * x, term = 1.0, sum = 1.0;
        for (int n = 1; n < 200; n++)
        {
            term *= twoXSquared / (2 * n + 1);
            sum += term;
            if (term < sum * 1e-17) break;
        }
        return 2.0 / Math.Sqrt(Math.PI) * x * Math.Exp(-x * x) * sum;
    }

    /// <summary>1/(x + ½/(x + 1/(x + 3/2/(x + …)))) for x ≥ 2, by the modified Lentz method.</summary>
    private static double ContinuedFraction(double x)
    {
        const double tiny = 1e-300;
        double f = x, c = x, d = 0.0;
        for (int n = 1; n < 5000; n++)
        {
            double a = 0.5 * n;
            d = x + a * d;
            if (d == 0) d = tiny;
            c = x + a / c;
            if (c == 0) c = tiny;
            d = 1.0 / d;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1.0) < 1e-16) break;
        }
        return 1.0 / f;
    }
}
