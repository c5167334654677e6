namespace FinQLoRA.Privacy.Accounting;

/// <summary>Arithmetic on numbers held as their logarithms, for the RDP sums whose terms over- or underflow a double
/// (binomial coefficients of order 63 times e^{i²/(2σ²)} at σ = 0.3). .NET's <c>double.LogP1</c>/<c>ExpM1</c> are
/// plain <c>Log(1 + x)</c>/<c>Exp(x) − 1</c>, which lose every digit for tiny x, hence Kahan's corrected forms here.</summary>
internal static class LogSpace
{
    /// <summary>log(1 + x), accurate for tiny x (Goldberg 1991, theorem 4).</summary>
    public static double Log1p(double x)
    {
        double u = 1.0 + x;
        return u == 1.0 ? x : Math.Log(u) * x / (u - 1.0);
    }

    /// <summary>e^x − 1, accurate for tiny x (Kahan's trick).</summary>
    public static double Expm1(double x)
    {
        double u = Math.Exp(x);
        if (u == 1.0) return x;
        double um1 = u - 1.0;
        return um1 == -1.0 ? -1.0 : um1 * x / Math.Log(u);
    }

    /// <summary>log(e^a + e^b).</summary>
    public static double Add(double a, double b)
    {
        if (double.IsNegativeInfinity(a)) return b;
        if (double.IsNegativeInfinity(b)) return a;
        double hi = Math.Max(a, b), lo = Math.Min(a, b);
        return hi + Log1p(Math.Exp(lo - hi));
    }
}

/// <summary>A running sum of signed terms given as (sign, log |term|): the fractional-order RDP series has binomial
/// coefficients of both signs, and subtracting in log space needs the larger magnitude first, which a running sum
/// cannot promise term by term.</summary>
internal struct SignedLogSum
{
    /// <summary>log of the sum of the positive terms and of the magnitudes of the negative ones.</summary>
    private double _logPositive, _logNegative;

    public static SignedLogSum Empty => new() { _logPositive = double.NegativeInfinity, _logNegative = double.NegativeInfinity };

    public void Add(bool negative, double logMagnitude)
    {
        if (negative) _logNegative = LogSpace.Add(_logNegative, logMagnitude);
        else _logPositive = LogSpace.Add(_logPositive, logMagnitude);
    }

    /// <summary>log of the sum; NaN when the sum is negative (a sum of probabilities never is, so that would be a bug).</summary>
    public readonly double Log
    {
        get
        {
            if (double.IsNegativeInfinity(_logNegative)) return _logPositive;
            if (_logNegative > _logPositive) return double.NaN;
            if (_logNegative == _logPositive) return double.NegativeInfinity;
            // log(e^p − e^n) = p + log(1 − e^{n−p})
            return _logPositive + LogSpace.Log1p(-Math.Exp(_logNegative - _logPositive));
        }
    }
}
