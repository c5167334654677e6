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
            // one seed per branch from the global generator, drawn in one op: the same values as one draw per branch in
            // turn, so a projection that adapts alone (DP's per-example capture) draws the mask it would draw in a group
            var seeds = randint(long.MaxValue, [branches], dtype: ScalarType.Int64).data<long>().ToArray();
            Fill(source, mask, dropped, seeds, p, keepScale);
        }
        else
        {
            mask = empty([branches, n, width], ScalarType.Byte, x.device).bernoulli_(1 - p);
            dropped = x.to(ScalarType.Float32).unsqueeze(0) * mask * keepScale;
        }
        return (dropped.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope());
    }

    /// <summary>Element j of branch b keeps when the high 32 bits of mix(seed_b + j·γ) are at least p·2³²:
    /// P(keep) = 1 − p within 2⁻³².</summary>
    private static void Fill(Tensor x, Tensor mask, Tensor dropped, long[] seeds, double p, float keepScale)
    {
        long perBranch = x.numel();
        long total = mask.numel();
        uint threshold = (uint)Math.Min(uint.MaxValue, Math.Round(p * 4294967296.0));
        bool bf16 = x.dtype == ScalarType.BFloat16;
        nint source = TensorMemory.DataPointer(x), keep = TensorMemory.DataPointer(mask), output = TensorMemory.DataPointer(dropped);
        const long block = 1 << 16;
        long blocks = (total + block - 1) / block;
        Parallel.For(0, blocks, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, bi =>
        {
            long start = bi * block;
            FillBlock(source, bf16, perBranch, keep, output, start, Math.Min(total, start + block), seeds, threshold, keepScale);
        });
    }

    private static unsafe void FillBlock(nint source, bool bf16, long perBranch, nint keep, nint output, long start, long end,
        long[] seeds, uint threshold, float keepScale)
    {
        ushort* x16 = (ushort*)source;
        float* x32 = (float*)source;
        byte* m = (byte*)keep;
        float* d = (float*)output;
        long branch = start / perBranch, j = start % perBranch; // flattened index i = branch·perBranch + j
        ulong seed = (ulong)seeds[branch];
        for (long i = start; i < end; i++)
        {
            uint uniform = (uint)(Mix(seed + (ulong)j * 0x9E3779B97F4A7C15UL) >> 32);
            float v = bf16 ? BitConverter.Int32BitsToSingle(x16[j] << 16) : x32[j];
            bool kept = uniform >= threshold;
            m[i] = kept ? (byte)1 : (byte)0;
            d[i] = kept ? v * keepScale : 0f;
            if (++j == perBranch && i + 1 < end) { j = 0; seed = (ulong)seeds[++branch]; }
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
