using System.Buffers;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization.Gemv;

/// <summary>
/// Quantized weight × 1–8 input rows on the CPU without materialising the dequantized weight: what decoding and
/// serving at low batch multiply, where dequantize-then-matmul would write and re-read the whole weight per token.
/// 4-bit (NF4/FP4, plain or double-quantized) and LLM.int8 weights; bf16 or fp32 inputs, the output in the input's
/// dtype, sums in fp32; optionally each row's own LoRA delta added in the same pass (<see cref="LowRankTerm"/>).
/// Results equal dequantize-then-matmul up to fp32 summation order. Larger batches keep dequantize-then-matmul,
/// whose matmul reuses each weight across rows. <c>FINQLORA_FUSED_GEMV=off</c> turns it off (benchmarks print before
/// and after in one run).
/// </summary>
public static unsafe class FusedGemv
{
    /// <summary>The most rows (batch × sequence) the fused kernels take.</summary>
    public const int MaxRows = 8;
    public const string EnvironmentVariable = "FINQLORA_FUSED_GEMV";

    /// <summary>Weights of fewer elements are multiplied on one thread: the fork/join would cost more than the work.</summary>
    private const long ParallelElements = 1L << 18;

    /// <summary>False when <c>FINQLORA_FUSED_GEMV=off</c> (read on each call, so a process can compare both paths).</summary>
    public static bool Enabled => !string.Equals(Environment.GetEnvironmentVariable(EnvironmentVariable), "off", StringComparison.OrdinalIgnoreCase);

    /// <summary>Whether <see cref="Multiply"/> takes this product: CPU, no gradient wanted, bf16/fp32, 1 to
    /// <see cref="RowLimit"/> rows.</summary>
    public static bool Applies(Tensor x, QuantizedTensor weight) =>
        weight is Blockwise4BitTensor or Int8RowwiseTensor
        && weight.Shape.Length == 2
        && x.device_type == DeviceType.CPU && weight.Device.type == DeviceType.CPU
        && x.dtype is ScalarType.BFloat16 or ScalarType.Float32
        && !(x.requires_grad && is_grad_enabled())
        && x.dim() >= 1 && x.shape[^1] == weight.Shape[1]
        && x.numel() / weight.Shape[1] is var rows && rows >= 1 && rows <= RowLimit(x, weight)
        && Enabled;

    /// <summary>
    /// The most rows for which the fused product is the faster one: <see cref="MaxRows"/> for every weight and input
    /// dtype. 4-bit weights with bf16 inputs once stopped at 4 rows where the CPU's bf16 matmul is native (oneDNN's
    /// matmul after dequantizing amortises one dequantization over all rows at 32 multiply-adds per instruction); since
    /// the kernels take four outputs per pass, and 5–8 rows as two passes, the fused 8-row product is 1.1–2.2× faster
    /// than dequantize-then-matmul there too (AMD EPYC with AVX-512 BF16, bench generate --quantized --kernel).
    /// </summary>
    public static int RowLimit(Tensor x, QuantizedTensor weight) => MaxRows;

    /// <summary>y = x·Wᵀ (+ each row's low-rank term), x [..., in] → y [..., out] in x's dtype.</summary>
    internal static Tensor Multiply(Tensor x, QuantizedTensor weight, double int8Threshold, LowRankTerm? lowRank = null,
        DequantKernelPath path = DequantKernelPath.Auto)
    {
        if (weight.Shape.Length != 2 || x.shape[^1] != weight.Shape[1])
            throw new ArgumentException($"input has {x.shape[^1]} features, the weight [{string.Join(", ", weight.Shape)}] expects {weight.Shape[^1]}", nameof(x));
        long inF = weight.Shape[1], outF = weight.Shape[0];
        int rows = checked((int)(x.numel() / inF));
        if (rows is < 1 or > MaxRows) throw new ArgumentException($"the fused gemv takes 1 to {MaxRows} rows, not {rows}", nameof(x));
        if (inF > int.MaxValue) throw new ArgumentException($"{inF} input features is more than the kernel indexes", nameof(weight));
        lowRank?.Validate(rows, inF, outF);
        using var scope = NewDisposeScope();
        Tensor x32 = x.detach().reshape(rows, inF).to(ScalarType.Float32).contiguous();
        Tensor y = empty([rows, outF], x.dtype);
        // u is rows × rank floats, written before it is read: a pooled array, so a decode step allocates nothing for it
        float[]? u = lowRank is null ? null : ArrayPool<float>.Shared.Rent(rows * lowRank.Rank);
        try
        {
            Compute(weight, x32, y, rows, int8Threshold, lowRank, u, path);
        }
        finally
        {
            if (u is not null) ArrayPool<float>.Shared.Return(u);
        }
        return y.reshape([.. x.shape[..^1], outF]).MoveToOuterDisposeScope();
    }

    private static void Compute(QuantizedTensor weight, Tensor x32, Tensor y, int rows, double int8Threshold, LowRankTerm? lowRank, float[]? u,
        DequantKernelPath path)
    {
        fixed (float* uData = u)
        fixed (long* offsets = lowRank?.BOffsets)
        {
            float* b = null;
            if (lowRank is not null)
            {
                lowRank.LowRankInputs((float*)TensorMemory.DataPointer(x32), rows, (int)weight.Shape[1], (float*)TensorMemory.DataPointer(lowRank.A), uData);
                b = (float*)TensorMemory.DataPointer(lowRank.B);
            }
            var output = new GemvOutput((void*)TensorMemory.DataPointer(y), y.dtype == ScalarType.BFloat16, weight.Shape[0],
                lowRank is null ? null : uData, lowRank?.Rank ?? 0, offsets, b, lowRank?.BStrideOut ?? 0, lowRank?.BStrideRank ?? 0);
            switch (weight)
            {
                case Blockwise4BitTensor q: FourBit(q, x32, rows, output, path); break;
                case Int8RowwiseTensor q: Int8(q, x32, rows, int8Threshold, output, path); break;
                default: throw new ArgumentException($"no fused gemv for {weight.Format} weights", nameof(weight));
            }
        }
    }

    private static void FourBit(Blockwise4BitTensor q, Tensor x32, int rows, GemvOutput output, DequantKernelPath path)
    {
        int inF = (int)q.Shape[1];
        path = FourBitGemvKernel.Resolve(path, inF, q.BlockSize);
        float* x = (float*)TensorMemory.DataPointer(x32);
        float[]? rented = null;
        try
        {
            if (path != DequantKernelPath.Scalar)
            {
                rented = ArrayPool<float>.Shared.Rent(rows * inF);
                fixed (float* xs = rented) FourBitGemvKernel.Deinterleave(x, xs, rows, inF);
            }
            fixed (float* xs = rented)
            fixed (float* code = q.Code)
            fixed (float* nestedCode = q.NestedCode)
            {
                BlockScales scales = q.IsDoubleQuantized
                    ? BlockScales.Nested((byte*)TensorMemory.DataPointer(q.AbsmaxCodes!), (float*)TensorMemory.DataPointer(q.NestedAbsmax!), nestedCode, q.NestedOffset, q.NestedBlockSize)
                    : BlockScales.Plain((float*)TensorMemory.DataPointer(q.Absmax!));
                var weight = new FourBitGemvKernel.Weight((byte*)TensorMemory.DataPointer(q.Packed), inF, q.Shape[0], q.BlockSize, scales, code);
                float* input = xs != null ? xs : x;
                ForOutputRanges(q.Shape[0], q.ElementCount, (o0, o1) => FourBitGemvKernel.Run(weight, input, rows, o0, o1, output, path));
            }
        }
        finally
        {
            if (rented != null) ArrayPool<float>.Shared.Return(rented);
        }
    }

    private static void Int8(Int8RowwiseTensor q, Tensor x32, int rows, double threshold, GemvOutput output, DequantKernelPath path)
    {
        int inF = (int)q.Shape[1];
        path = Int8GemvKernel.Resolve(path);
        float* x = (float*)TensorMemory.DataPointer(x32);
        // The activations exactly as the unfused path quantizes them (outlier columns taken over all rows of the batch),
        // in pooled buffers
        short[] codes = ArrayPool<short>.Shared.Rent(rows * inF);
        long[] columns = ArrayPool<long>.Shared.Rent(inF);
        float* sca = stackalloc float[MaxRows];
        try
        {
            fixed (short* c = codes)
            fixed (long* cols = columns)
            {
                int outliers = Int8RowQuantizer.Quantize(x, rows, inF, threshold, c, sca, cols);
                var activations = new Int8GemvKernel.Activations(c, sca, x, outliers > 0 ? cols : null, outliers);
                var weight = new Int8GemvKernel.Weight((sbyte*)TensorMemory.DataPointer(q.CB), (float*)TensorMemory.DataPointer(q.SCB), inF, q.Shape[0]);
                ForOutputRanges(q.Shape[0], q.ElementCount, (o0, o1) => Int8GemvKernel.Run(weight, activations, rows, o0, o1, output, path));
            }
        }
        finally
        {
            ArrayPool<short>.Shared.Return(codes);
            ArrayPool<long>.Shared.Return(columns);
        }
    }

    /// <summary>Splits the output rows over torch's intra-op thread count (one contiguous range each).</summary>
    internal static void ForOutputRanges(long outFeatures, long elements, Action<long, long> body)
    {
        int threads = Math.Max(1, get_num_threads());
        if (threads == 1 || elements < ParallelElements || outFeatures < 2 * threads)
        {
            body(0, outFeatures);
            return;
        }
        Parallel.For(0, threads, t => body(outFeatures * t / threads, outFeatures * (t + 1) / threads));
    }
}
