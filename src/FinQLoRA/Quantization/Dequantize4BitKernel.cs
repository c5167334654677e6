using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace FinQLoRA.Quantization;

/// <summary>
/// Fused CPU dequantization of bitsandbytes 4-bit weights: reads packed nibbles and block scales once and writes
/// bf16 or fp32 once, in parallel over blocks. Bit-identical to "fp32 <c>code[q]·absmax</c>, then <c>.to(bfloat16)</c>".
/// <para>
/// Per block the 16 products <c>code[i]·absmax</c> form a block-local table (one multiply, one bf16 rounding of 16 lanes),
/// so every output element is a table lookup: AVX-512 turns 16 packed bytes into 32 word indices (zero-extend, shift,
/// mask) and gathers 32 bf16 outputs with one <c>vpermw</c>, or 16 fp32 outputs per <c>vpermps</c>.
/// AVX2 splits the 16-entry table into two 8-entry halves (two <c>vpermps</c> and a blend on bit 3).
/// The scalar path uses the same block table and serves any CPU.
/// </para>
/// </summary>
internal static unsafe class Dequantize4BitKernel
{
    public static DequantKernelPath Resolve(DequantKernelPath path) => path switch
    {
        DequantKernelPath.Auto => Avx512BW.IsSupported ? DequantKernelPath.Avx512
            : Avx2.IsSupported ? DequantKernelPath.Avx2 : DequantKernelPath.Scalar,
        DequantKernelPath.Avx512 when !Avx512BW.IsSupported => throw new PlatformNotSupportedException("AVX-512BW is not available on this CPU"),
        DequantKernelPath.Avx2 when !Avx2.IsSupported => throw new PlatformNotSupportedException("AVX2 is not available on this CPU"),
        _ => path,
    };

    /// <summary>
    /// Dequantizes <paramref name="n"/> elements. <paramref name="code16"/> holds the 16 code values;
    /// <paramref name="output"/> receives n bf16 (as ushort bits) or n fp32 values; with <paramref name="bf16Values"/>
    /// the fp32 values are the bf16 ones widened (each block's table rounded to bf16 once), for a matmul that runs in
    /// fp32 on bf16 weights without a second pass over the weight.
    /// </summary>
    public static void Run(byte* packed, long n, int blockSize, BlockScales scales, float* code16, void* output, bool bf16,
        DequantKernelPath path = DequantKernelPath.Auto, bool bf16Values = false)
    {
        bool round = bf16Values && !bf16;
        path = Resolve(path);
        // The vector paths consume 16 (AVX-512) or 8 (AVX2) packed bytes per step; other block sizes go scalar.
        if (path == DequantKernelPath.Avx512 && blockSize % 32 != 0) path = DequantKernelPath.Scalar;
        if (path == DequantKernelPath.Avx2 && blockSize % 16 != 0) path = DequantKernelPath.Scalar;

        long fullBlocks = n / blockSize;
        Blockwise4BitCodec.ForRanges(fullBlocks, n, (b0, b1) =>
        {
            switch (path)
            {
                case DequantKernelPath.Avx512:
                    if (bf16) Avx512Bf16(packed, blockSize, scales, code16, (ushort*)output, b0, b1);
                    else Avx512Fp32(packed, blockSize, scales, code16, (float*)output, b0, b1, round);
                    break;
                case DequantKernelPath.Avx2:
                    Avx2Blocks(packed, blockSize, scales, code16, output, bf16, b0, b1, round);
                    break;
                default:
                    ScalarBlocks(packed, blockSize, scales, code16, output, bf16, b0, b1, round);
                    break;
            }
        });
        if (fullBlocks * blockSize < n) ScalarTail(packed, n, blockSize, scales, code16, output, bf16, fullBlocks, round);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Avx512Bf16(byte* packed, int blockSize, BlockScales scales, float* code16, ushort* output, long b0, long b1)
    {
        Vector512<float> code = Vector512.Load(code16);
        Vector512<int> nibble = Vector512.Create(0xF);
        int steps = blockSize / 32;
        for (long b = b0; b < b1; b++)
        {
            Vector512<float> table = code * Vector512.Create(scales.Get(b));
            Vector512<ushort> table16 = Avx512F.ConvertToVector256UInt16(BFloat16Rounding.Round(table)).ToVector512Unsafe();
            byte* src = packed + b * (blockSize / 2);
            ushort* dst = output + b * blockSize;
            for (int k = 0; k < steps; k++)
            {
                Vector512<int> bytes = Avx512F.ConvertToVector512Int32(Vector128.Load(src + 16 * k));
                // word 2j = high nibble of byte j (first element), word 2j+1 = low nibble
                Vector512<int> index = (bytes >>> 4) | ((bytes & nibble) << 16);
                Avx512BW.PermuteVar32x16(table16, index.AsUInt16()).Store(dst + 32 * k);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Avx512Fp32(byte* packed, int blockSize, BlockScales scales, float* code16, float* output, long b0, long b1, bool round)
    {
        Vector512<float> code = Vector512.Load(code16);
        Vector512<int> nibble = Vector512.Create(0xF);
        int steps = blockSize / 32;
        for (long b = b0; b < b1; b++)
        {
            Vector512<float> table = code * Vector512.Create(scales.Get(b));
            if (round) table = (BFloat16Rounding.Round(table) << 16).AsSingle();
            byte* src = packed + b * (blockSize / 2);
            float* dst = output + b * blockSize;
            for (int k = 0; k < steps; k++)
            {
                Vector512<int> bytes = Avx512F.ConvertToVector512Int32(Vector128.Load(src + 16 * k));
                Vector512<ushort> index = ((bytes >>> 4) | ((bytes & nibble) << 16)).AsUInt16();
                Vector512<int> first = Avx512F.ConvertToVector512Int32(index.GetLower());
                Vector512<int> second = Avx512F.ConvertToVector512Int32(index.GetUpper());
                Avx512F.PermuteVar16x32(table, first).Store(dst + 32 * k);
                Avx512F.PermuteVar16x32(table, second).Store(dst + 32 * k + 16);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Avx2Blocks(byte* packed, int blockSize, BlockScales scales, float* code16, void* output, bool bf16, long b0, long b1, bool round)
    {
        Vector256<float> codeLow = Vector256.Load(code16), codeHigh = Vector256.Load(code16 + 8);
        // Each byte twice (b0 b0 b1 b1 ...), then shift the even copies right by 4: element order high nibble first.
        Vector128<byte> duplicate = Vector128.Create((byte)0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        Vector256<uint> shifts = Vector256.Create(4u, 0, 4, 0, 4, 0, 4, 0);
        Vector256<uint> nibble = Vector256.Create(0xFu);
        int steps = blockSize / 16;
        for (long b = b0; b < b1; b++)
        {
            float s = scales.Get(b);
            Vector256<float> low = codeLow * s, high = codeHigh * s;
            if (round)
            {
                low = (BFloat16Rounding.Round(low) << 16).AsSingle();
                high = (BFloat16Rounding.Round(high) << 16).AsSingle();
            }
            byte* src = packed + b * (blockSize / 2);
            long dstIndex = b * blockSize;
            for (int k = 0; k < steps; k++)
            {
                Vector128<byte> twice = Ssse3.Shuffle(Vector128.CreateScalar(*(ulong*)(src + 8 * k)).AsByte(), duplicate);
                Vector256<uint> i0 = Avx2.ShiftRightLogicalVariable(Avx2.ConvertToVector256Int32(twice).AsUInt32(), shifts) & nibble;
                Vector256<uint> i1 = Avx2.ShiftRightLogicalVariable(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(twice, 8)).AsUInt32(), shifts) & nibble;
                Vector256<float> v0 = Lookup16(low, high, i0), v1 = Lookup16(low, high, i1);
                long at = dstIndex + 16 * k;
                if (bf16)
                {
                    // packus interleaves 128-bit lanes: [a0-3 b0-3 a4-7 b4-7]; permute 64-bit quarters back into order.
                    Vector256<ushort> words = Avx2.PackUnsignedSaturate(BFloat16Rounding.Round(v0).AsInt32(), BFloat16Rounding.Round(v1).AsInt32());
                    Avx2.Permute4x64(words.AsUInt64(), 0b11_01_10_00).AsUInt16().Store((ushort*)output + at);
                }
                else
                {
                    v0.Store((float*)output + at);
                    v1.Store((float*)output + at + 8);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Lookup16(Vector256<float> low, Vector256<float> high, Vector256<uint> index)
    {
        Vector256<float> a = Avx2.PermuteVar8x32(low, index.AsInt32());
        Vector256<float> b = Avx2.PermuteVar8x32(high, index.AsInt32());
        return Avx.BlendVariable(a, b, (index << 28).AsSingle()); // bit 3 of the code selects the upper half
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScalarBlocks(byte* packed, int blockSize, BlockScales scales, float* code16, void* output, bool bf16, long b0, long b1, bool round)
    {
        float* table = stackalloc float[16];
        ushort* table16 = stackalloc ushort[16];
        int bytesPerBlock = blockSize / 2;
        for (long b = b0; b < b1; b++)
        {
            float s = scales.Get(b);
            for (int i = 0; i < 16; i++)
            {
                table[i] = code16[i] * s;
                table16[i] = BFloat16Rounding.Round(table[i]);
                if (round) table[i] = BFloat16Rounding.Widen(table16[i]);
            }
            byte* src = packed + b * bytesPerBlock;
            long at = b * blockSize;
            if (bf16)
            {
                ushort* dst = (ushort*)output + at;
                for (int j = 0; j < bytesPerBlock; j++) { dst[2 * j] = table16[src[j] >> 4]; dst[2 * j + 1] = table16[src[j] & 0xF]; }
            }
            else
            {
                float* dst = (float*)output + at;
                for (int j = 0; j < bytesPerBlock; j++) { dst[2 * j] = table[src[j] >> 4]; dst[2 * j + 1] = table[src[j] & 0xF]; }
            }
        }
    }

    /// <summary>The last, short block (n not a multiple of the block size): element by element.</summary>
    private static void ScalarTail(byte* packed, long n, int blockSize, BlockScales scales, float* code16, void* output, bool bf16, long block, bool round)
    {
        float s = scales.Get(block);
        for (long i = block * blockSize; i < n; i++)
        {
            byte b = packed[i >> 1];
            float v = code16[(i & 1) == 0 ? b >> 4 : b & 0xF] * s;
            if (bf16) ((ushort*)output)[i] = BFloat16Rounding.Round(v);
            else ((float*)output)[i] = round ? BFloat16Rounding.Widen(BFloat16Rounding.Round(v)) : v;
        }
    }
}
