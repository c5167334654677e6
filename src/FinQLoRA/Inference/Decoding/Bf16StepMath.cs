using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using FinQLoRA.Quantization;

namespace FinQLoRA.Inference.Decoding;

/// <summary>
/// The libtorch step's arithmetic for bf16 activations, on fp32 vectors that hold bf16 values (exact in fp32), for
/// <see cref="SingleTokenDecoder"/>. Eager bf16 ops compute in fp32 and round their output to bf16 (round to nearest
/// even, <see cref="BFloat16Rounding"/>), so each function rounds where the model's no-grad forward has an op boundary:
/// RMSNorm as <c>RmsNorm</c> computes it (normalise in fp32, round, scale, round), each RoPE product and their sum,
/// SiLU and the SwiGLU product, the residual adds. Attention follows libtorch's CPU flash-attention kernel for bf16
/// (<c>aten/src/ATen/native/cpu/FlashAttentionKernel.cpp</c>), which the decode step's <c>scaled_dot_product_attention</c>
/// runs: fp32 scores, blocks of 512 keys with a running max, the unnormalised probabilities (libtorch's vectorised
/// <c>exp_u20</c> on whole vectors, libm's <c>expf</c> on the tail, summed lane by lane) rounded to bf16 before they
/// weight the values, fp32 sums, and one rounding of <c>sum · (1 / Σp)</c>. What is left is fp32 summation order in
/// the products (and libm against Sleef in sin and cos), so results equal the libtorch step's or sit one bf16 ulp away.
/// </summary>
internal static unsafe class Bf16StepMath
{
    /// <summary>Keys per block of the flash-attention kernel (its <c>kv_split_size</c> for every query length).</summary>
    private const int KeyBlock = 512;

    /// <summary>fp32 lanes of libtorch's vectorised kernels on this CPU (its AVX-512 or AVX2 build; the default build
    /// maps exp to libm on every element). A process started with <c>ATEN_CPU_CAPABILITY</c> set lower than the CPU
    /// would change libtorch's lanes; the step then differs from it by the approximate exp's error (fp32 noise).</summary>
    private static readonly int Lanes = Avx512F.IsSupported ? 16 : Avx2.IsSupported && Fma.IsSupported ? 8 : 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Round(float value) => BFloat16Rounding.Widen(BFloat16Rounding.Round(value));

    /// <summary>x[from..to) rounded to bf16 in place (a matmul's fp32 sums becoming its bf16 output).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Round(float* x, int from, int to)
    {
        int i = from;
        if (Vector512.IsHardwareAccelerated)
            for (; i + 16 <= to; i += 16)
                Vector512.Store((BFloat16Rounding.Round(Vector512.Load(x + i)) << 16).AsSingle(), x + i);
        else if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= to; i += 8)
                Vector256.Store((BFloat16Rounding.Round(Vector256.Load(x + i)) << 16).AsSingle(), x + i);
        for (; i < to; i++) x[i] = Round(x[i]);
    }

    /// <summary>bf16 bits widened to fp32 (exact).</summary>
    public static void Widen(ushort* from, float* to, int n)
    {
        for (int i = 0; i < n; i++) to[i] = BFloat16Rounding.Widen(from[i]);
    }

    /// <summary>bf16 bits of values that are already bf16 (the upper halves; exact).</summary>
    public static void Narrow(float* from, ushort* to, int n)
    {
        for (int i = 0; i < n; i++) to[i] = (ushort)(BitConverter.SingleToUInt32Bits(from[i]) >> 16);
    }

    /// <summary><c>w · (x · rsqrt(mean(x²) + eps)).to(bf16)</c>, rounded: <c>RmsNorm</c>'s bf16 forward.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RmsNorm(float* x, float* weight, float* output, int n, double eps)
    {
        float squares = SingleTokenDecoder.Dot(x, x, n);
        float r = 1f / MathF.Sqrt(squares / n + (float)eps);
        for (int i = 0; i < n; i++) output[i] = Round(weight[i] * Round(x[i] * r));
    }

    /// <summary>Rotate-half RoPE on <paramref name="heads"/> vectors of <paramref name="d"/>, as
    /// <c>x·cos + rotate_half(x)·sin</c> in bf16: both products rounded, then their sum (<paramref name="cos"/> and
    /// <paramref name="sin"/> already rounded to bf16, as the model's tables are).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rope(float* x, int heads, int d, float[] cos, float[] sin)
    {
        int half = d / 2;
        for (int i = 0; i < half; i++)
        {
            float c = cos[i], s = sin[i];
            for (int hd = 0; hd < heads; hd++)
            {
                float* v = x + hd * d;
                float a = v[i], b = v[i + half];
                // the first half's sine is the table's −sin: rounding is symmetric, so round(b·(−s)) = −round(b·s)
                v[i] = Round(Round(a * c) - Round(b * s));
                v[i + half] = Round(Round(b * c) + Round(a * s));
            }
        }
    }

    /// <summary>silu(gate)·up for rows [from, to): SiLU rounded (<c>x / (1 + exp(−x))</c> in fp32), then the product.</summary>
    public static void SwiGlu(float* gate, float* up, int from, int to)
    {
        for (int j = from; j < to; j++) gate[j] = Round(Round(gate[j] / (1f + MathF.Exp(-gate[j]))) * up[j]);
    }

    /// <summary>x += y, rounded (the residual add).</summary>
    public static void Add(float* x, float* y, int n)
    {
        for (int i = 0; i < n; i++) x[i] = Round(x[i] + y[i]);
    }

    /// <summary>y[r] = W[r]·x in fp32 for rows [r0, r1) of a bf16 weight in the natural layout: the shapes and CPUs
    /// the bf16 gemv kernel does not read (rows not whole 32-element groups, no AVX-512).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(ushort* w, float* x, float* y, int cols, int r0, int r1)
    {
        for (int r = r0; r < r1; r++) y[r] = Dot(x, w + (long)r * cols, cols);
    }

    /// <summary>
    /// Causal attention of <paramref name="heads"/> query heads sharing one KV head over its first
    /// <paramref name="length"/> cached positions (bf16 bits), as the flash-attention kernel computes one query row:
    /// per block of 512 keys, scores s = (q·k)·scale in fp32, the block's max against the running max m, p = exp(s − m)
    /// summed in fp32 and rounded to bf16, the running sum and output rescaled by exp(m_old − m), output += p·v in fp32;
    /// at the end output · (1 / Σp), rounded. The heads read each key and value once; each head's sums run in one order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Attention(float* q, ushort* keys, ushort* values, float* output, float* scores, int heads, int d, int length)
    {
        float scale = (float)(1.0 / Math.Sqrt(d)); // sdp::calculate_scale: in double, then fp32
        Span<float> max = stackalloc float[heads], sum = stackalloc float[heads], rescale = stackalloc float[heads];
        max.Fill(float.NegativeInfinity);
        sum.Clear();
        new Span<float>(output, heads * d).Clear();
        for (int n = 0; n < length; n += KeyBlock)
        {
            int block = Math.Min(KeyBlock, length - n);
            for (int j = 0; j < block; j++)
                for (int head = 0; head < heads; head++)
                    scores[head * block + j] = Dot(q + head * d, keys + (long)(n + j) * d, d) * scale;
            for (int head = 0; head < heads; head++)
            {
                float* sh = scores + head * block;
                float blockMax = float.NegativeInfinity;
                for (int j = 0; j < block; j++) blockMax = MathF.Max(blockMax, sh[j]);
                float m = MathF.Max(max[head], blockMax);
                float blockSum = ExpSum(sh, block, m);
                rescale[head] = MathF.Exp(max[head] - m);
                sum[head] = blockSum + rescale[head] * sum[head];
                max[head] = m;
                if (n > 0)
                    for (int i = 0; i < d; i++) output[head * d + i] *= rescale[head];
            }
            for (int j = 0; j < block; j++)
                for (int head = 0; head < heads; head++)
                    Axpy(scores[head * block + j], values + (long)(n + j) * d, output + head * d, d);
        }
        for (int head = 0; head < heads; head++)
        {
            float reciprocal = 1f / sum[head];
            for (int i = 0; i < d; i++) output[head * d + i] = Round(output[head * d + i] * reciprocal);
        }
    }

    /// <summary>
    /// s[j] ← bf16(exp(s[j] − max)), returning Σ exp(s[j] − max) in fp32, in the order libtorch's
    /// <c>_exp_reduce_sum_fusion_kernel</c> takes: whole vectors of <see cref="Lanes"/> through <see cref="ExpU20"/>, each
    /// lane summing its own elements, the lanes folded by halves (lane i with lane i + n/2, then n/4, ...), then the tail
    /// through libm's <c>expf</c> (which <see cref="MathF.Exp"/> calls) added one by one.
    /// </summary>
    private static float ExpSum(float* s, int n, float max)
    {
        int vectorized = Lanes == 0 ? 0 : n - n % Lanes;
        Span<float> lanes = stackalloc float[Math.Max(Lanes, 1)];
        lanes.Clear();
        for (int i = 0; i < vectorized; i++)
        {
            float p = ExpU20(s[i] - max);
            lanes[i % Lanes] += p;
            s[i] = Round(p);
        }
        for (int width = Lanes / 2; width >= 1; width /= 2)
            for (int l = 0; l < width; l++) lanes[l] += lanes[l + width];
        float sum = lanes[0];
        for (int i = vectorized; i < n; i++)
        {
            float p = MathF.Exp(s[i] - max);
            sum += p;
            s[i] = Round(p);
        }
        return sum;
    }

    /// <summary>
    /// exp as libtorch's vectorised <c>exp_u20</c> computes it (≤ 20 fp32 ulps), step for step so the bits agree:
    /// x clamped to fp32's exp range, n = ⌊x·log2(e) + ½⌋ (one fused multiply-add), r = x − n·ln2 (fused), a degree-5
    /// polynomial in r by Horner's rule with fused multiply-adds and its fitted coefficients, times 2^(n−1), times 2
    /// (2^(n−1) keeps n = 128 representable); 0 below the range.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float ExpU20(float x)
    {
        float lnMin = BitConverter.UInt32BitsToSingle(0xC2AEAC50), lnMax = BitConverter.UInt32BitsToSingle(0x42B17218);
        float log2e = BitConverter.UInt32BitsToSingle(0x3FB8AA3B), ln2 = BitConverter.UInt32BitsToSingle(0x3F317218);
        bool underflow = x < lnMin;
        float src = MathF.Max(MathF.Min(x, lnMax), lnMin);
        float n = MathF.Floor(MathF.FusedMultiplyAdd(src, log2e, 0.5f));
        float r = MathF.FusedMultiplyAdd(-n, ln2, src);
        float poly = MathF.FusedMultiplyAdd(r, 0.00828929059f, 0.0418978221f);
        poly = MathF.FusedMultiplyAdd(r, poly, 0.166676521f);
        poly = MathF.FusedMultiplyAdd(r, poly, 0.499991506f);
        poly = MathF.FusedMultiplyAdd(r, poly, 0.999999701f);
        poly = MathF.FusedMultiplyAdd(r, poly, 1f);
        float scale = underflow ? 0f : BitConverter.Int32BitsToSingle(((int)(n - 1f) + 127) << 23);
        return poly * scale * 2f;
    }

    /// <summary>Σ x[i]·widen(w[i]) in fp32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(float* x, ushort* w, int n)
    {
        int i = 0;
        float total = 0;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            Vector256<float> s0 = Vector256<float>.Zero, s1 = s0;
            for (; i + 16 <= n; i += 16)
            {
                s0 = Vector256.FusedMultiplyAdd(Load8(w + i), Vector256.Load(x + i), s0);
                s1 = Vector256.FusedMultiplyAdd(Load8(w + i + 8), Vector256.Load(x + i + 8), s1);
            }
            for (; i + 8 <= n; i += 8) s0 = Vector256.FusedMultiplyAdd(Load8(w + i), Vector256.Load(x + i), s0);
            total = Vector256.Sum(s0 + s1);
        }
        for (; i < n; i++) total += x[i] * BFloat16Rounding.Widen(w[i]);
        return total;
    }

    /// <summary>y += alpha·widen(x) in fp32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Axpy(float alpha, ushort* x, float* y, int n)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var a = Vector256.Create(alpha);
            for (; i + 8 <= n; i += 8) Vector256.Store(Vector256.FusedMultiplyAdd(a, Load8(x + i), Vector256.Load(y + i)), y + i);
        }
        for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(alpha, BFloat16Rounding.Widen(x[i]), y[i]);
    }

    /// <summary>Eight bf16 values widened to fp32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Load8(ushort* p)
    {
        var (low, high) = Vector128.Widen(Vector128.Load(p));
        return (Vector256.Create(low, high) << 16).AsSingle();
    }
}
