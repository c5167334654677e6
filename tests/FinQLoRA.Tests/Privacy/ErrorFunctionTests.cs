using FinQLoRA.Privacy.Accounting;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Privacy;

/// <summary>Our erfc (series below 2, continued fraction above) against libtorch's, an independent implementation
/// (Cephes' rational approximations), in float64 from the far negative side to the deep tail.</summary>
public sealed class ErrorFunctionTests
{
    private static readonly double[] Points = [.. Enumerable.Range(0, 641).Select(i => -6 + i * 0.05)]; // −6 … 26

    [Fact]
    public void ErfcMatchesLibtorchToThirteenDigits()
    {
        using var scope = NewDisposeScope();
        double[] expected = special.erfc(tensor(Points)).data<double>().ToArray();
        for (int i = 0; i < Points.Length; i++)
        {
            double ours = ErrorFunction.Erfc(Points[i]);
            // erfc's condition number is about 2x² (e^{−x²} magnifies the rounding of x²)
            double tolerance = 1e-13 + 1e-14 * 2 * Points[i] * Points[i];
            Assert.True(Math.Abs(ours - expected[i]) <= tolerance * expected[i], $"erfc({Points[i]}) = {ours:R}, libtorch {expected[i]:R}");
        }
    }

    [Fact]
    public void LogErfcStaysFiniteWhereErfcUnderflows()
    {
        // up to 26 libtorch's erfc is a normal double; beyond, the asymptotic series
        // erfc(x) = e^{−x²}/(x√π)·(1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + 105/(16x⁸)), whose next term is below 1e-13 there
        // (TorchSharp 0.107's special.erfcx returns erfc, so it cannot serve)
        double[] small = [-3, 0.5, 1.9, 2.0, 2.1, 5, 10, 20, 26];
        using var scope = NewDisposeScope();
        double[] erfc = special.erfc(tensor(small)).data<double>().ToArray();
        for (int i = 0; i < small.Length; i++)
            Assert.True(Math.Abs(ErrorFunction.LogErfc(small[i]) - Math.Log(erfc[i])) <= 1e-13 * (1 + Math.Abs(Math.Log(erfc[i]))), $"log erfc({small[i]})");
        foreach (double x in (double[])[27, 40, 100, 1000])
        {
            double u = 1 / (2 * x * x);
            double expected = -x * x - Math.Log(x * Math.Sqrt(Math.PI)) + Math.Log(1 - u + 3 * u * u - 15 * u * u * u + 105 * u * u * u * u);
            Assert.True(Math.Abs(ErrorFunction.LogErfc(x) - expected) <= 1e-13 * Math.Abs(expected), $"log erfc({x}) = {ErrorFunction.LogErfc(x):R}, asymptotic {expected:R}");
        }
        Assert.Equal(0.0, ErrorFunction.Erfc(40)); // what the log form exists for
    }

    [Fact]
    public void NormalCdfKeepsBothTails()
    {
        using var scope = NewDisposeScope();
        double[] xs = [-37.5, -30, -20, -8, -1, 0, 1, 8];
        // ½·erfc(−x/√2): libtorch's special.ndtr is ½(1 + erf(x/√2)), which loses the lower tail (0 below about −9)
        double[] expected = (special.erfc(tensor(xs) * -Math.Sqrt(0.5)) * 0.5).data<double>().ToArray();
        Assert.Equal(0.0, special.ndtr(tensor(new[] { -10.0 })).item<double>()); // why the PRV does not use ndtr
        for (int i = 0; i < xs.Length; i++)
            Assert.True(Math.Abs(ErrorFunction.NormalCdf(xs[i]) - expected[i]) <= (1e-13 + 1e-14 * xs[i] * xs[i]) * expected[i],
                $"Φ({xs[i]}) = {ErrorFunction.NormalCdf(xs[i]):R}, libtorch {expected[i]:R}");
    }
}
