namespace FinQLoRA.Privacy.Accounting;

/// <summary>The distribution of the privacy loss after all steps: probabilities on the grid t_j = <paramref name="Min"/> + j·<paramref name="Step"/>.</summary>
internal sealed class ComposedPrv(double[] probabilities, double min, double step)
{
    /// <summary>The least ε with δ(ε) = E[(1 − e^{ε − L})⁺] ≤ <paramref name="delta"/>; 0 when δ(0) ≤ δ already.
    /// For ε in (t_i, t_{i+1}], δ(ε) = Σ_{j&gt;i} p_j − e^ε Σ_{j&gt;i} p_j e^{−t_j}, solved exactly for ε. The grid is scanned
    /// from the top and the first cell whose δ exceeds the target is taken, so round-off in the FFT's far left cannot
    /// end the search early: the answer errs, if at all, toward a larger ε.</summary>
    public double EpsilonFor(double delta)
    {
        double tail = 0, weightedTail = 0; // Σ_{j>i} p_j and Σ_{j>i} p_j e^{−t_j}
        for (int i = probabilities.Length - 1; i >= 0; i--)
        {
            double t = min + i * step;
            if (tail - Math.Exp(t) * weightedTail > delta)
            {
                if (i == probabilities.Length - 1)
                    throw new InvalidOperationException($"δ({t}) > {delta} at the top of the PRV grid: the grid is too narrow");
                return Math.Max(0, Math.Log((tail - delta) / weightedTail));
            }
            tail += probabilities[i];
            weightedTail += probabilities[i] * Math.Exp(-t);
        }
        return 0;
    }
}
