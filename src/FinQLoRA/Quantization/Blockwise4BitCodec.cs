namespace FinQLoRA.Quantization;

/// <summary>
/// The arithmetic of bitsandbytes' blockwise 4-bit quantization (CUDA <c>kQuantizeBlockwise</c>) and of its
/// double quantization, on raw fp32 buffers. <see cref="Quantizer"/> wraps it for tensors.
/// </summary>
internal static unsafe class Blockwise4BitCodec
{
    /// <summary>Parallel work below this many elements is not worth the thread hand-off.</summary>
    private const long ParallelThreshold = 1 << 16;

    /// <summary>
    /// Quantizes <paramref name="n"/> floats into <c>(n+1)/2</c> packed bytes and <c>ceil(n/blockSize)</c> absmax values.
    /// <list type="bullet">
    /// <item>absmax = max |x| over the block's valid elements (NaN ignored, like <c>fmaxf</c>); the last block may be short.</item>
    /// <item>normalise by multiplying with the fp32 reciprocal <c>1f/absmax</c> (an all-zero block gives 0·inf = NaN → code 0, as on CUDA).</item>
    /// <item>pack two codes per byte, first element in the high nibble. An odd n pads the last low nibble with the code of
    /// 0.0 (the CUDA kernel loads out-of-range elements as 0 and quantizes them: 0b0111 for NF4, 0b0000 for FP4).</item>
    /// </list>
    /// </summary>
    public static void Quantize(float* x, long n, int blockSize, FourBitType type, byte* packed, float* absmax)
    {
        if (blockSize % 2 != 0) throw new ArgumentException("block size must be even", nameof(blockSize));
        long blocks = (n + blockSize - 1) / blockSize;
        ForRanges(blocks, n, (b0, b1) =>
        {
            for (long b = b0; b < b1; b++)
            {
                long start = b * blockSize;
                int count = (int)Math.Min(blockSize, n - start);
                float* block = x + start;
                float max = 0f;
                for (int i = 0; i < count; i++)
                {
                    float a = MathF.Abs(block[i]);
                    if (a > max) max = a;
                }
                absmax[b] = max;
                float inv = 1.0f / max;
                byte* outBytes = packed + start / 2;
                int pairs = count / 2;
                for (int j = 0; j < pairs; j++)
                {
                    byte hi = FourBitCodebook.Encode(type, block[2 * j] * inv);
                    byte lo = FourBitCodebook.Encode(type, block[2 * j + 1] * inv);
                    outBytes[j] = (byte)((hi << 4) | lo);
                }
                if ((count & 1) != 0)
                {
                    byte hi = FourBitCodebook.Encode(type, block[count - 1] * inv);
                    byte lo = FourBitCodebook.Encode(type, 0f * inv);
                    outBytes[pairs] = (byte)((hi << 4) | lo);
                }
            }
        });
    }

    /// <summary>Scalar reference dequantization to fp32: <c>out[i] = code[q_i] · absmax[i / blockSize]</c>.</summary>
    public static void Dequantize(byte* packed, float* absmax, long n, int blockSize, ReadOnlySpan<float> code, float* output)
    {
        for (long i = 0; i < n; i++)
        {
            byte b = packed[i >> 1];
            int q = (i & 1) == 0 ? b >> 4 : b & 0xF;
            output[i] = code[q] * absmax[i / blockSize];
        }
    }

    /// <summary>
    /// Double quantization of the block scales (bitsandbytes <c>quantize_4bit(compress_statistics=True)</c>):
    /// offset = mean(absmax); (absmax − offset) is quantized in blocks of 256 with the signed dynamic map
    /// (<c>kQuantizeBlockwise&lt;General8bit&gt;</c>: reciprocal of the block's absmax2, then <see cref="DynamicMap.Encode"/>).
    /// The mean is taken in double and rounded once: torch's fp32 reduction order is not reproducible across devices,
    /// so the offset can differ from a GPU's by an ulp; it is stored as <c>nested_offset</c>, so readers are unaffected.
    /// </summary>
    public static float DoubleQuantize(float* absmax, long blocks, ReadOnlySpan<float> dynamicCode, byte* codes, float* absmax2)
    {
        double sum = 0;
        for (long i = 0; i < blocks; i++) sum += absmax[i];
        float offset = (float)(sum / blocks);
        int nested = QuantizationOptions.NestedBlockSize;
        long nestedBlocks = (blocks + nested - 1) / nested;
        float[] dyn = dynamicCode.ToArray();
        for (long nb = 0; nb < nestedBlocks; nb++)
        {
            long start = nb * nested;
            int count = (int)Math.Min(nested, blocks - start);
            float max = 0f;
            for (int i = 0; i < count; i++)
            {
                float a = MathF.Abs(absmax[start + i] - offset);
                if (a > max) max = a;
            }
            absmax2[nb] = max;
            float inv = 1.0f / max;
            for (int i = 0; i < count; i++)
                codes[start + i] = DynamicMap.Encode(dyn, (absmax[start + i] - offset) * inv);
        }
        return offset;
    }

    /// <summary>
    /// Decodes double-quantized scales: <c>absmax_i = dyn[q_i] · absmax2[i/256] + offset</c>, in two fp32 roundings
    /// as bitsandbytes does (<c>dequantize_blockwise</c>, then <c>absmax += offset</c> as a separate op).
    /// </summary>
    public static float DecodeNestedAbsmax(byte q, float absmax2, float offset, ReadOnlySpan<float> dynamicCode)
    {
        float scaled = dynamicCode[q] * absmax2;
        return scaled + offset;
    }

    /// <summary>Runs <paramref name="body"/> over [0, count) in contiguous ranges, in parallel when the work is large.</summary>
    internal static void ForRanges(long count, long work, Action<long, long> body)
    {
        int workers = Environment.ProcessorCount;
        if (work < ParallelThreshold || workers == 1 || count < 2)
        {
            body(0, count);
            return;
        }
        int chunks = (int)Math.Min(count, workers * 4L);
        Parallel.For(0, chunks, c => body(count * c / chunks, count * (c + 1) / chunks));
    }
}
