namespace FinQLoRA.Privacy.Accounting;

/// <summary>
/// The grid a privacy loss distribution is discretised on: t_i = (i − k)·dt for i = 0 … N − 1, N = 2k + 2 (even, as
/// the real FFT's halving wants), so value 0 sits at index k. A sum of T values drawn from this grid has index sum S
/// and value (S − T·k)·dt; the FFT gives S modulo N, and <see cref="PrvAccountant"/> maps it back to this same grid.
/// </summary>
/// <param name="HalfCount">k: the grid runs from −k·dt to (k + 1)·dt</param>
/// <param name="Step">dt, the mesh size</param>
internal sealed record PrvDomain(int HalfCount, double Step)
{
    /// <summary>The most grid points accounted (8 Mi: about 64 MiB a copy); more means T in the hundreds of thousands,
    /// where the RDP accountant is the practical choice.</summary>
    public const int MaxSize = 1 << 23;

    public int Size => 2 * HalfCount + 2;
    public double Min => -HalfCount * Step;
    public double Max => (HalfCount + 1) * Step;
    public double this[int i] => (i - HalfCount) * Step;

    /// <summary>The grid of mesh <paramref name="step"/> covering [−<paramref name="halfWidth"/>, <paramref name="halfWidth"/>],
    /// grown to a size whose prime factors are 2 and 3 only, where torch's FFT is fastest (a size with many factors 5 measured several times slower) (a wider grid is only safer).</summary>
    public static PrvDomain Covering(double halfWidth, double step, long steps)
    {
        double points = 2 * Math.Ceiling(halfWidth / step) + 2;
        if (!(points <= MaxSize))
            throw new UserInputException($"PRV accounting of {steps} steps needs a grid of {points:0} points (more than {MaxSize}); use the RDP accountant (rdp) for this many steps");
        int size = SmoothEvenAtLeast((int)points);
        return new PrvDomain(size / 2 - 1, step);
    }

    private static int SmoothEvenAtLeast(int n)
    {
        for (int m = n % 2 == 0 ? n : n + 1; ; m += 2)
        {
            int r = m;
            foreach (int p in (ReadOnlySpan<int>)[2, 3])
                while (r % p == 0) r /= p;
            if (r == 1) return m;
        }
    }
}
