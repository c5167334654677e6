namespace FinQLoRA.Formats.Gguf;

/// <summary>
/// ggml's Q8_0: blocks of 32 values stored as an f16 scale d followed by 32 int8 q, with x ≈ d·q.
/// Quantization follows llama.cpp's reference (<c>quantize_row_q8_0_ref</c>, gguf-py <c>quantize_blocks</c>):
/// d = amax/127 in f32, q = roundf(x · (1/d)) with halves away from zero, then d is stored as f16.
/// The error per value is at most |d|/2 plus the f16 rounding of d times |q| ≤ 127.
/// </summary>
public static class Q8Zero
{
    public const int BlockSize = 32;
    public const int BlockBytes = 34;

    public static void Quantize(ReadOnlySpan<float> x, Span<byte> blocks)
    {
        if (x.Length % BlockSize != 0) throw new ArgumentException($"Q8_0 needs a multiple of {BlockSize} values, got {x.Length}");
        int n = x.Length / BlockSize;
        if (blocks.Length != n * BlockBytes) throw new ArgumentException("output length does not match the block count");
        for (int b = 0; b < n; b++)
        {
            var src = x.Slice(b * BlockSize, BlockSize);
            var dst = blocks.Slice(b * BlockBytes, BlockBytes);
            float amax = 0;
            foreach (float v in src) amax = MathF.Max(amax, MathF.Abs(v));
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            BitConverter.TryWriteBytes(dst, (Half)d);
            for (int i = 0; i < BlockSize; i++)
                dst[2 + i] = (byte)(sbyte)MathF.Round(src[i] * id, MidpointRounding.AwayFromZero);
        }
    }

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> x)
    {
        if (blocks.Length % BlockBytes != 0) throw new ArgumentException($"Q8_0 data must be whole {BlockBytes}-byte blocks");
        int n = blocks.Length / BlockBytes;
        if (x.Length != n * BlockSize) throw new ArgumentException("output length does not match the block count");
        for (int b = 0; b < n; b++)
        {
            var src = blocks.Slice(b * BlockBytes, BlockBytes);
            float d = (float)BitConverter.ToHalf(src);
            var dst = x.Slice(b * BlockSize, BlockSize);
            for (int i = 0; i < BlockSize; i++) dst[i] = d * (sbyte)src[2 + i];
        }
    }
}
