using static TorchSharp.torch;

namespace FinQLoRA.Privacy.Accounting;

/// <summary>
/// The PRV accountant (Gopi, Lee, Wutschitz 2021, "Numerical Composition of Differential Privacy"), as Opacus'
/// <c>PRVAccountant</c> and Microsoft's <c>prv_accountant</c> do it: one step's privacy loss random variable is
/// truncated to [−L, L], discretised on a grid of mesh h, its mean restored, composed T times by raising its FFT
/// (torch.fft's rfft/irfft in float64) to the T-th power, and ε read off the composed distribution with error bars.
/// The grid follows the paper's remark 5.6 and Opacus: L = max(RDP ε of all T steps at δ_err/4, RDP ε of one step at
/// δ_err/(8T), ε_err) + 3 and h = ε_err / √(T·log(12/δ_err)/2); the errors are Opacus' defaults, ε_err = 0.01 and
/// δ_err = δ/1000.
/// </summary>
public static class PrvAccountant
{
    public const double DefaultEpsilonError = 0.01;
    public const double DeltaErrorFraction = 1e-3;

    /// <summary>ε (the upper bound) after <paramref name="steps"/> steps.</summary>
    public static PrivacySpent Epsilon(double sampleRate, double noiseMultiplier, long steps, double delta) =>
        new(Bounds(sampleRate, noiseMultiplier, steps, delta).Upper, delta, null);

    /// <summary>The bounds on ε after <paramref name="steps"/> steps.</summary>
    /// <param name="epsilonError">ε_err; the grid's mesh shrinks with it</param>
    /// <param name="deltaError">δ_err; δ/1000 when not given</param>
    public static PrvEpsilon Bounds(double sampleRate, double noiseMultiplier, long steps, double delta,
        double epsilonError = DefaultEpsilonError, double? deltaError = null)
    {
        AccountingArguments.Check(sampleRate, noiseMultiplier, steps, delta);
        double deltaErr = deltaError ?? delta * DeltaErrorFraction;
        if (!(epsilonError > 0)) throw new ArgumentOutOfRangeException(nameof(epsilonError), epsilonError, "ε_err is above 0");
        if (!(deltaErr > 0 && deltaErr < delta)) throw new ArgumentOutOfRangeException(nameof(deltaError), deltaErr, "δ_err is in (0, δ)");

        var domain = Domain(sampleRate, noiseMultiplier, steps, epsilonError, deltaErr);
        // each of the N cells carries round-off of order 1e-16; summed they must stay far below δ − δ_err
        if (2.3e-16 * domain.Size > delta - deltaErr)
            throw new UserInputException($"δ = {delta} is too small for PRV accounting on a grid of {domain.Size} points (round-off would dominate); use the RDP accountant (rdp)");
        ComposedPrv composed = Compose(new SubsampledGaussianPrv(sampleRate, noiseMultiplier), domain, steps);
        return new PrvEpsilon(
            Lower: Math.Max(0, composed.EpsilonFor(delta + deltaErr) - epsilonError),
            Estimate: composed.EpsilonFor(delta),
            Upper: composed.EpsilonFor(delta - deltaErr) + epsilonError);
    }

    private static PrvDomain Domain(double q, double sigma, long steps, double epsilonError, double deltaError)
    {
        double allSteps = RdpAccountant.Epsilon(q, sigma, steps, deltaError / 4).Epsilon;
        double oneStep = RdpAccountant.Epsilon(q, sigma, 1, deltaError / (8.0 * steps)).Epsilon;
        double halfWidth = Math.Max(Math.Max(allSteps, oneStep), epsilonError) + 3;
        double mesh = epsilonError / Math.Sqrt(steps * Math.Log(12 / deltaError) / 2);
        return PrvDomain.Covering(halfWidth, mesh, steps);
    }

    private static ComposedPrv Compose(SubsampledGaussianPrv prv, PrvDomain domain, long steps)
    {
        using var scope = NewDisposeScope();
        int n = domain.Size;
        Tensor cells = prv.CellProbabilities(domain);
        double[] p = cells.data<double>().ToArray();
        double discreteMean = 0;
        for (int i = 0; i < n; i++) discreteMean += domain[i] * p[i];
        double shift = prv.TruncatedMean(domain.Min, domain.Max) - discreteMean;
        if (Math.Abs(shift) >= domain.Step / 2)
            throw new InvalidOperationException($"the discretised privacy loss's mean is {shift} off the continuous one, more than half the mesh {domain.Step}");
        // the T-fold circular convolution; no mass wraps around because the grid holds all of the composed loss
        // but δ_err/4 (that is what L was chosen for)
        double[] circular = fft.irfft(fft.rfft(cells).pow(steps), n).data<double>().ToArray();

        // circular index S mod N holds the index sum S, value (S − T·k)·dt; grid index j = S − (T − 1)·k holds
        // value (j − k)·dt, so j reads from (j + (T − 1)·k) mod N
        long rotation = (steps - 1) % n * domain.HalfCount % n;
        var composed = new double[n];
        for (int j = 0; j < n; j++) composed[j] = circular[(j + rotation) % n];
        // every step's values were shifted by the mean correction: the sum by T of them
        return new ComposedPrv(composed, domain.Min + steps * shift, domain.Step);
    }
}
