using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace FinQLoRA.Quantization.Gemv;

/// <summary>
/// y = x·Wᵀ for a bitsandbytes 4-bit weight (NF4 or FP4, plain or double-quantized scales) and 1–8 fp32 input rows,
/// reading each packed byte and block scale once and never writing the dequantized weight (bitsandbytes'
/// <c>gemv_4bit</c> idea). Per block the 16 values <c>code[i]·absmax</c> form a table, rounded to bf16 for bf16
/// inputs, so every weight the sums see is exactly the one dequantize-then-matmul multiplies; only the summation order
/// differs.
/// <para>
/// AVX-512: 16 packed bytes are 32 weights; <c>vpmovzxbd</c> widens them to 16 lanes, <c>vpermps</c> looks the high
/// nibbles (even elements) and the low nibbles (odd elements, the permute reads only the low 4 bits) up in the
/// one-register fp32 table (bf16-rounded values widened back for bf16 inputs: three vector operations per 32 weights
/// besides the multiply-adds, where one word permute of both nibbles needed seven to build its indices and split its
/// output), and the input is laid out per 32-element group as 16 even then 16 odd values
/// (<see cref="Deinterleave"/>), so no shuffle is needed. Four outputs are summed per pass over the input rows
/// (<see cref="Avx512Quads{TRows}"/>), so each input vector loaded serves four outputs; 5–8 rows are two passes.
/// AVX2 splits the table into two 8-lane halves (two permutes and
/// a blend on bit 3). The scalar path reads any shape in the natural layout and serves every CPU.
/// </para>
/// </summary>
internal static unsafe class FourBitGemvKernel
{
    private const int Group = 32; // elements per 16 packed bytes

    /// <summary>The weight as the kernel reads it: [out, in] row-major flattened into blocks of <c>BlockSize</c>.</summary>
    public readonly struct Weight(byte* packed, int inFeatures, long outFeatures, int blockSize, BlockScales scales, float* code16)
    {
        public readonly byte* Packed = packed;
        public readonly int In = inFeatures;
        public readonly long Out = outFeatures;
        public readonly int BlockSize = blockSize;
        public readonly BlockScales Scales = scales;
        public readonly float* Code16 = code16;
    }

    /// <summary>Whether the vector paths can read this shape: every row whole blocks of whole 32-element groups.</summary>
    public static bool Vectorizable(int inFeatures, int blockSize) => blockSize % Group == 0 && inFeatures % blockSize == 0;

    public static DequantKernelPath Resolve(DequantKernelPath path, int inFeatures, int blockSize)
    {
        path = path == DequantKernelPath.Auto
            ? (Avx512F.IsSupported ? DequantKernelPath.Avx512 : Avx2.IsSupported ? DequantKernelPath.Avx2 : DequantKernelPath.Scalar)
            : Dequantize4BitKernel.Resolve(path);
        return Vectorizable(inFeatures, blockSize) ? path : DequantKernelPath.Scalar;
    }

    /// <summary>Reorders each 32-element group of the rows to 16 even then 16 odd elements (what the vector paths read).</summary>
    public static void Deinterleave(float* x, float* xs, int rows, int inFeatures)
    {
        for (long r = 0; r < rows; r++)
        {
            float* src = x + r * inFeatures, dst = xs + r * inFeatures;
            for (int g = 0; g < inFeatures; g += Group)
                for (int j = 0; j < Group / 2; j++)
                {
                    dst[g + j] = src[g + 2 * j];
                    dst[g + Group / 2 + j] = src[g + 2 * j + 1];
                }
        }
    }

    /// <summary>Output rows [o0, o1) for all input rows. <paramref name="x"/> is [rows, in] fp32, deinterleaved for the
    /// vector paths, natural for the scalar one.</summary>
    public static void Run(in Weight w, float* x, int rows, long o0, long o1, in GemvOutput y, DequantKernelPath path)
    {
        switch (path)
        {
            case DequantKernelPath.Avx512:
                // 5–8 rows: rows 0–3, then the rest, each pass over four outputs at a time (a pass at 8 rows would need
                // 32 accumulators; two 4-row passes decode each weight twice and still beat the one-output loop)
                if (rows is < 1 or > FusedGemv.MaxRows)
                    throw new ArgumentOutOfRangeException(nameof(rows), $"the gemv kernel takes 1 to {FusedGemv.MaxRows} rows, not {rows}");
                Avx512Rows(w, x, Math.Min(rows, 4), o0, o1, y);
                if (rows > 4) Avx512Rows(w, x + 4L * w.In, rows - 4, o0, o1, y.FromRow(4));
                break;
            case DequantKernelPath.Avx2: Avx2Rows(w, x, rows, o0, o1, y); break;
            default: Scalar(w, x, rows, o0, o1, y); break;
        }
    }

    private static void Avx512Rows(in Weight w, float* x, int rows, long o0, long o1, in GemvOutput y)
    {
        switch (rows)
        {
            case 1: Avx512Quads<Rows1>(w, x, o0, o1, y); break;
            case 2: Avx512Quads<Rows2>(w, x, o0, o1, y); break;
            case 3: Avx512Quads<Rows3>(w, x, o0, o1, y); break;
            default: Avx512Quads<Rows4>(w, x, o0, o1, y); break;
        }
    }

    /// <summary>One output at a time, 1–4 rows: the last 1–3 outputs of a range <see cref="Avx512Quads{TRows}"/> leaves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Avx512<TRows>(in Weight w, float* x, long o0, long o1, in GemvOutput y) where TRows : struct, IGemvRows
    {
        nint inF = w.In;
        int blockSize = w.BlockSize, groupsPerBlock = blockSize / Group;
        long blocksPerRow = w.In / blockSize;
        bool bf16 = y.Bf16;
        BlockScales scales = w.Scales;
        Vector512<float> code = Vector512.Load(w.Code16);
        float* x0 = x, x1 = x0 + inF, x2 = x1 + inF, x3 = x2 + inF;
        for (long o = o0; o < o1; o++)
        {
            byte* p = w.Packed + o * inF / 2;
            nint g = 0; // element offset in the row
            // even and odd elements in separate accumulators: two independent FMA chains per row, not one twice as long
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
            for (long block = o * blocksPerRow, end = block + blocksPerRow; block < end; block++)
            {
                Vector512<float> table = Table(code, scales.Get(block), bf16);
                for (int j = 0; j < groupsPerBlock; j++, p += Group / 2, g += Group)
                {
                    // high nibbles are the even elements, low nibbles the odd ones (vpermps reads only an index's low 4 bits)
                    Vector512<int> codes = Avx512F.ConvertToVector512Int32(Vector128.Load(p));
                    Vector512<float> even = Avx512F.PermuteVar16x32(table, Avx512F.ShiftRightLogical(codes, 4));
                    Vector512<float> odd = Avx512F.PermuteVar16x32(table, codes);
                    nint h = g + Group / 2;
                    a0 = Avx512F.FusedMultiplyAdd(even, Vector512.Load(x0 + g), a0);
                    b0 = Avx512F.FusedMultiplyAdd(odd, Vector512.Load(x0 + h), b0);
                    if (TRows.Count > 1) { a1 = Avx512F.FusedMultiplyAdd(even, Vector512.Load(x1 + g), a1); b1 = Avx512F.FusedMultiplyAdd(odd, Vector512.Load(x1 + h), b1); }
                    if (TRows.Count > 2) { a2 = Avx512F.FusedMultiplyAdd(even, Vector512.Load(x2 + g), a2); b2 = Avx512F.FusedMultiplyAdd(odd, Vector512.Load(x2 + h), b2); }
                    if (TRows.Count > 3) { a3 = Avx512F.FusedMultiplyAdd(even, Vector512.Load(x3 + g), a3); b3 = Avx512F.FusedMultiplyAdd(odd, Vector512.Load(x3 + h), b3); }
                }
            }
            y.Store(0, o, Vector512.Sum(a0 + b0));
            if (TRows.Count > 1) y.Store(1, o, Vector512.Sum(a1 + b1));
            if (TRows.Count > 2) y.Store(2, o, Vector512.Sum(a2 + b2));
            if (TRows.Count > 3) y.Store(3, o, Vector512.Sum(a3 + b3));
        }
    }

    /// <summary>
    /// 1–4 rows, four output rows per pass: each input vector loaded feeds four outputs' multiply-adds. The one-output
    /// loop (<see cref="Avx512{TRows}"/>) loads 2 input vectors per row for every 2 multiply-adds, and 4 rows of a
    /// 2048-wide input (32 KB; 128 KB at 8192) do not stay in L1 beside the weight stream, so at 4 rows the loads, not
    /// the multiply-adds, set its pace (measured: this loop takes ~0.6 of the one-output loop's time at 4 rows). Each
    /// output sums even and odd elements into one accumulator (16 at 4 rows, beside 4 tables and 4 looked-up weight
    /// vectors: no register moves in the loop); the sums differ from the one-output loop's only in fp32 summation
    /// order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Avx512Quads<TRows>(in Weight w, float* x, long o0, long o1, in GemvOutput y) where TRows : struct, IGemvRows
    {
        Debug.Assert(TRows.Count <= 4);
        nint inF = w.In, rowBytes = inF / 2;
        int blockSize = w.BlockSize, groupsPerBlock = blockSize / Group;
        long blocksPerRow = w.In / blockSize;
        bool bf16 = y.Bf16;
        BlockScales scales = w.Scales;
        Vector512<float> code = Vector512.Load(w.Code16);
        float* x0 = x, x1 = x0 + inF, x2 = x1 + inF, x3 = x2 + inF;
        long o = o0;
        for (; o + 4 <= o1; o += 4)
        {
            byte* p = w.Packed + o * rowBytes;
            nint g = 0; // element offset in the row
            // a, b, c, d: outputs o .. o + 3; digit: input row
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
            Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, d0 = default, d1 = default, d2 = default, d3 = default;
            for (long block = o * blocksPerRow, end = block + blocksPerRow; block < end; block++)
            {
                Vector512<float> tA = Table(code, scales.Get(block), bf16);
                Vector512<float> tB = Table(code, scales.Get(block + blocksPerRow), bf16);
                Vector512<float> tC = Table(code, scales.Get(block + 2 * blocksPerRow), bf16);
                Vector512<float> tD = Table(code, scales.Get(block + 3 * blocksPerRow), bf16);
                for (int j = 0; j < groupsPerBlock; j++, p += Group / 2, g += Group)
                {
                    // high nibbles are the even elements, low nibbles the odd ones (vpermps reads only an index's low 4 bits).
                    // Evens of all four outputs, then odds: 4 looked-up vectors live at a time, not 8, which with 16
                    // accumulators and 4 tables leaves the register allocator room (no moves in the loop)
                    Vector512<int> cA = Avx512F.ConvertToVector512Int32(Vector128.Load(p));
                    Vector512<int> cB = Avx512F.ConvertToVector512Int32(Vector128.Load(p + rowBytes));
                    Vector512<int> cC = Avx512F.ConvertToVector512Int32(Vector128.Load(p + 2 * rowBytes));
                    Vector512<int> cD = Avx512F.ConvertToVector512Int32(Vector128.Load(p + 3 * rowBytes));
                    {
                        // even elements: the first 16 of the group's input layout
                        Vector512<float> wA = Avx512F.PermuteVar16x32(tA, Avx512F.ShiftRightLogical(cA, 4)), wB = Avx512F.PermuteVar16x32(tB, Avx512F.ShiftRightLogical(cB, 4));
                        Vector512<float> wC = Avx512F.PermuteVar16x32(tC, Avx512F.ShiftRightLogical(cC, 4)), wD = Avx512F.PermuteVar16x32(tD, Avx512F.ShiftRightLogical(cD, 4));
                        { Vector512<float> xr = Vector512.Load(x0 + g); a0 = Avx512F.FusedMultiplyAdd(xr, wA, a0); b0 = Avx512F.FusedMultiplyAdd(xr, wB, b0); c0 = Avx512F.FusedMultiplyAdd(xr, wC, c0); d0 = Avx512F.FusedMultiplyAdd(xr, wD, d0); }
                        if (TRows.Count > 1) { Vector512<float> xr = Vector512.Load(x1 + g); a1 = Avx512F.FusedMultiplyAdd(xr, wA, a1); b1 = Avx512F.FusedMultiplyAdd(xr, wB, b1); c1 = Avx512F.FusedMultiplyAdd(xr, wC, c1); d1 = Avx512F.FusedMultiplyAdd(xr, wD, d1); }
                        if (TRows.Count > 2) { Vector512<float> xr = Vector512.Load(x2 + g); a2 = Avx512F.FusedMultiplyAdd(xr, wA, a2); b2 = Avx512F.FusedMultiplyAdd(xr, wB, b2); c2 = Avx512F.FusedMultiplyAdd(xr, wC, c2); d2 = Avx512F.FusedMultiplyAdd(xr, wD, d2); }
                        if (TRows.Count > 3) { Vector512<float> xr = Vector512.Load(x3 + g); a3 = Avx512F.FusedMultiplyAdd(xr, wA, a3); b3 = Avx512F.FusedMultiplyAdd(xr, wB, b3); c3 = Avx512F.FusedMultiplyAdd(xr, wC, c3); d3 = Avx512F.FusedMultiplyAdd(xr, wD, d3); }
                    }
                    {
                        // odd elements: the last 16
                        Vector512<float> wA = Avx512F.PermuteVar16x32(tA, cA), wB = Avx512F.PermuteVar16x32(tB, cB);
                        Vector512<float> wC = Avx512F.PermuteVar16x32(tC, cC), wD = Avx512F.PermuteVar16x32(tD, cD);
                        { Vector512<float> xr = Vector512.Load(x0 + g + Group / 2); a0 = Avx512F.FusedMultiplyAdd(xr, wA, a0); b0 = Avx512F.FusedMultiplyAdd(xr, wB, b0); c0 = Avx512F.FusedMultiplyAdd(xr, wC, c0); d0 = Avx512F.FusedMultiplyAdd(xr, wD, d0); }
                        if (TRows.Count > 1) { Vector512<float> xr = Vector512.Load(x1 + g + Group / 2); a1 = Avx512F.FusedMultiplyAdd(xr, wA, a1); b1 = Avx512F.FusedMultiplyAdd(xr, wB, b1); c1 = Avx512F.FusedMultiplyAdd(xr, wC, c1); d1 = Avx512F.FusedMultiplyAdd(xr, wD, d1); }
                        if (TRows.Count > 2) { Vector512<float> xr = Vector512.Load(x2 + g + Group / 2); a2 = Avx512F.FusedMultiplyAdd(xr, wA, a2); b2 = Avx512F.FusedMultiplyAdd(xr, wB, b2); c2 = Avx512F.FusedMultiplyAdd(xr, wC, c2); d2 = Avx512F.FusedMultiplyAdd(xr, wD, d2); }
                        if (TRows.Count > 3) { Vector512<float> xr = Vector512.Load(x3 + g + Group / 2); a3 = Avx512F.FusedMultiplyAdd(xr, wA, a3); b3 = Avx512F.FusedMultiplyAdd(xr, wB, b3); c3 = Avx512F.FusedMultiplyAdd(xr, wC, c3); d3 = Avx512F.FusedMultiplyAdd(xr, wD, d3); }
                    }
                }
            }
            { y.Store(0, o, Vector512.Sum(a0)); y.Store(0, o + 1, Vector512.Sum(b0)); y.Store(0, o + 2, Vector512.Sum(c0)); y.Store(0, o + 3, Vector512.Sum(d0)); }
            if (TRows.Count > 1) { y.Store(1, o, Vector512.Sum(a1)); y.Store(1, o + 1, Vector512.Sum(b1)); y.Store(1, o + 2, Vector512.Sum(c1)); y.Store(1, o + 3, Vector512.Sum(d1)); }
            if (TRows.Count > 2) { y.Store(2, o, Vector512.Sum(a2)); y.Store(2, o + 1, Vector512.Sum(b2)); y.Store(2, o + 2, Vector512.Sum(c2)); y.Store(2, o + 3, Vector512.Sum(d2)); }
            if (TRows.Count > 3) { y.Store(3, o, Vector512.Sum(a3)); y.Store(3, o + 1, Vector512.Sum(b3)); y.Store(3, o + 2, Vector512.Sum(c3)); y.Store(3, o + 3, Vector512.Sum(d3)); }
        }
        if (o < o1) Avx512<TRows>(w, x, o, o1, y); // the last 1–3 outputs
    }

    /// <summary>A block's 16 weights <c>code[i]·absmax</c>; for bf16 inputs rounded to bf16 and widened back (exact),
    /// the weight the unfused matmul sees.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Table(Vector512<float> code, float absmax, bool bf16)
    {
        Vector512<float> table = code * Vector512.Create(absmax);
        return bf16 ? (BFloat16Rounding.Round(table) << 16).AsSingle() : table;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Avx2Rows(in Weight w, float* x, int rows, long o0, long o1, in GemvOutput y)
    {
        int inF = w.In;
        int blockSize = w.BlockSize;
        bool bf16 = y.Bf16;
        Vector256<float>* acc = stackalloc Vector256<float>[FusedGemv.MaxRows];
        for (long o = o0; o < o1; o++)
        {
            long start = o * inF;
            byte* p = w.Packed + start / 2;
            long block = start / blockSize;
            int left = (int)(blockSize - start % blockSize);
            var (low, high) = Table256(w, block, bf16);
            for (int r = 0; r < rows; r++) acc[r] = default;
            for (int g = 0; g < inF; g += Group)
            {
                if (left == 0)
                {
                    (low, high) = Table256(w, ++block, bf16);
                    left = blockSize;
                }
                left -= Group;
                for (int half = 0; half < 2; half++)
                {
                    Vector256<int> codes = Avx2.ConvertToVector256Int32(p + g / 2 + 8 * half);
                    Vector256<int> hi = Avx2.ShiftRightLogical(codes, 4);
                    // blendvps picks the upper half where the sign bit is set: bit 3 of each nibble moved there
                    Vector256<float> even = Avx.BlendVariable(Avx2.PermuteVar8x32(low, hi), Avx2.PermuteVar8x32(high, hi), Avx2.ShiftLeftLogical(codes, 24).AsSingle());
                    Vector256<float> odd = Avx.BlendVariable(Avx2.PermuteVar8x32(low, codes), Avx2.PermuteVar8x32(high, codes), Avx2.ShiftLeftLogical(codes, 28).AsSingle());
                    int e = g + 8 * half, d = g + Group / 2 + 8 * half;
                    for (int r = 0; r < rows; r++)
                    {
                        float* xr = x + (long)r * inF;
                        acc[r] = Fma.MultiplyAdd(odd, Vector256.Load(xr + d), Fma.MultiplyAdd(even, Vector256.Load(xr + e), acc[r]));
                    }
                }
            }
            for (int r = 0; r < rows; r++) y.Store(r, o, Vector256.Sum(acc[r]));
        }
    }

    private static (Vector256<float> Low, Vector256<float> High) Table256(in Weight w, long block, bool bf16)
    {
        var s = Vector256.Create(w.Scales.Get(block));
        Vector256<float> low = Vector256.Load(w.Code16) * s, high = Vector256.Load(w.Code16 + 8) * s;
        if (bf16)
        {
            low = (BFloat16Rounding.Round(low) << 16).AsSingle();
            high = (BFloat16Rounding.Round(high) << 16).AsSingle();
        }
        return (low, high);
    }

    /// <summary>Any shape (blocks may straddle rows, rows may start mid-byte); x in its natural layout.</summary>
    private static void Scalar(in Weight w, float* x, int rows, long o0, long o1, in GemvOutput y)
    {
        int inF = w.In;
        float* table = stackalloc float[16];
        float* sums = stackalloc float[FusedGemv.MaxRows];
        for (long o = o0; o < o1; o++)
        {
            for (int r = 0; r < rows; r++) sums[r] = 0f;
            long start = o * inF;
            long block = -1;
            for (int i = 0; i < inF; i++)
            {
                long e = start + i;
                if (e / w.BlockSize != block)
                {
                    block = e / w.BlockSize;
                    float scale = w.Scales.Get(block);
                    for (int q = 0; q < 16; q++) table[q] = y.ToOutputPrecision(w.Code16[q] * scale);
                }
                byte packed = w.Packed[e >> 1];
                float weight = table[(e & 1) == 0 ? packed >> 4 : packed & 0xF];
                for (int r = 0; r < rows; r++) sums[r] += weight * x[(long)r * inF + i];
            }
            for (int r = 0; r < rows; r++) y.Store(r, o, sums[r]);
        }
    }
}
