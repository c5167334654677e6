using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// The dropout of a group of LoRA branches that share one input (attention's q, k, v): one independent keep-mask per
/// branch, as PEFT draws one <c>nn.Dropout</c> per module, all drawn in one pass. On the CPU libtorch's bernoulli runs
/// a serial Mersenne Twister (its parallel MKL path is taken on Intel CPUs only), 4.6 % of a training step on a 2-core
/// AMD CPU; here each element's uniform comes from a counter-based hash (SplitMix64's finaliser of seed + index), so
/// any thread can compute any element and the masks depend only on the seed. The seed is drawn from libtorch's global
/// generator, so <c>manual_seed</c> and <c>set_rng_state</c> (exact resume, gradient checkpointing's replay) reproduce
/// the masks. Elsewhere (a GPU) the masks come from the device's bernoulli.
/// </summary>
internal static class LoraDropoutMask
{
    /// <summary>x's rows dropped <paramref name="branches"/> times independently: <c>x·m/(1−p)</c> in fp32 [G, N, in]
    /// (what PEFT's dropout of the fp32 input gives) and the keep masks m as bytes [G, N, in] (for backward).</summary>
    /// <param name="x">[N, in], any floating dtype</param>
    public static (Tensor Dropped, Tensor Mask) Draw(Tensor x, int branches, double p)
    {
        if (p <= 0 || p >= 1) throw new ArgumentOutOfRangeException(nameof(p), p, "dropout must lie in (0, 1) to draw a mask");
        using var scope = NewDisposeScope();
        long n = x.shape[0], width = x.shape[1];
        float keepScale = (float)(1.0 / (1.0 - p));
        Tensor mask, dropped;
        if (x.device_type == DeviceType.CPU && x.dtype is ScalarType.BFloat16 or ScalarType.Float32)
        {
            var source = x.contiguous();
            mask = empty([branches, n, width], ScalarType.Byte);
            dropped = empty([branches, n, width], ScalarType.Float32);
            // 2^63 values from the global generator: the one libtorch op of the draw
            ulong seed = (ulong)randint(long.MaxValue, [1], dtype: ScalarType.Int64).item<long>();
            Fill(source, mask, dropped, seed, p, keepScale);
        }
        else
        {
            mask = empty([branches, n, width], ScalarType.Byte, x.device).bernoulli_(1 - p);
            dropped = x.to(ScalarType.Float32).unsqueeze(0) * mask * keepScale;
        }
        return (dropped.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope());
    }

    /// <summary>Element i of the flattened [G, N, in] masks keeps when the 32-bit half i mod 2 of
    /// mix(seed + ⌊i/2⌋·γ) is at least p·2³²: P(keep) = 1 − p within 2⁻³².</summary>
    private static void Fill(Tensor x, Tensor mask, Tensor dropped, ulong seed, double p, float keepScale)
    {
        long perBranch = x.numel();
        long total = mask.numel();
        uint threshold = (uint)Math.Min(uint.MaxValue, Math.Round(p * 4294967296.0));
        bool bf16 = x.dtype == ScalarType.BFloat16;
        nint source = TensorMemory.DataPointer(x), keep = TensorMemory.DataPointer(mask), output = TensorMemory.DataPointer(dropped);
        // even-sized blocks, so that a pair of elements (one hash) never straddles two tasks
        const long block = 1 << 16;
        long blocks = (total + block - 1) / block;
        Parallel.For(0, blocks, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, bi =>
        {
            long start = bi * block;
            FillBlock(source, bf16, perBranch, keep, output, start, Math.Min(total, start + block), seed, threshold, keepScale);
        });
    }

    private static unsafe void FillBlock(nint source, bool bf16, long perBranch, nint keep, nint output, long start, long end,
        ulong seed, uint threshold, float keepScale)
    {
        ushort* x16 = (ushort*)source;
        float* x32 = (float*)source;
        byte* m = (byte*)keep;
        float* d = (float*)output;
        long j = start % perBranch; // the element of x under flattened index i
        ulong h = 0;
        for (long i = start; i < end; i++)
        {
            if ((i & 1) == 0) h = Mix(seed + (ulong)(i >> 1) * 0x9E3779B97F4A7C15UL);
            uint uniform = (i & 1) == 0 ? (uint)h : (uint)(h >> 32);
            float v = bf16 ? BitConverter.Int32BitsToSingle(x16[j] << 16) : x32[j];
            bool kept = uniform >= threshold;
            m[i] = kept ? (byte)1 : (byte)0;
            d[i] = kept ? v * keepScale : 0f;
            if (++j == perBranch) j = 0;
        }
    }

    /// <summary>SplitMix64's output function (Steele, Lea, Flood 2014): a bijection whose outputs for consecutive
    /// inputs pass BigCrush.</summary>
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
