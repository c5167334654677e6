using static TorchSharp.torch;

namespace FinQLoRA.Privacy;

/// <summary>
/// The Gaussian mechanism's noise: N(0, σ²C²) per coordinate, drawn from a generator seeded by (run seed, step) alone,
/// so a resumed run adds exactly the noise the uninterrupted one would have, and no other draw (dropout, sampling) can
/// shift it. Under data parallelism only rank 0 adds it: the ranks' sums are then added, so the total holds it once.
/// </summary>
public static class GradientNoise
{
    /// <summary>Adds σ·C·N(0, 1) to every element of <paramref name="sums"/> in place, in list order from one generator.</summary>
    public static void Add(IReadOnlyList<Tensor> sums, double noiseMultiplier, double maxGradNorm, long seed, long step)
    {
        double std = noiseMultiplier * maxGradNorm;
        if (std == 0 || sums.Count == 0) return;
        using var scope = NewDisposeScope();
        using var generator = new Generator(StreamSeed(seed, step), sums[0].device);
        using var noGrad = no_grad();
        foreach (var s in sums)
            s.add_(randn(s.shape, ScalarType.Float32, s.device, generator: generator).mul_(std).to(s.dtype));
    }

    /// <summary>A 64-bit seed for (seed, step): SplitMix64's finaliser of both, so neighbouring steps and seeds give
    /// unrelated streams (seed + step would give run s's step t+1 the noise of run s+1's step t).</summary>
    public static ulong StreamSeed(long seed, long step)
    {
        ulong z = Mix((ulong)seed) ^ ((ulong)step + 0x9E3779B97F4A7C15UL);
        return Mix(z);
    }

    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
