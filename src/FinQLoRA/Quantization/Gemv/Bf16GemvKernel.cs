using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace FinQLoRA.Quantization.Gemv;

/// <summary>
/// y = x·Wᵀ for a dense bf16 weight and 1–8 fp32 input rows (<see cref="DenseGemv"/>): the decode-time head
/// (128,256 × 2048 on Llama 3.2 1B, 525 MB a token) and 16-bit projections. A bf16 value is the upper half of its fp32
/// value, so 32 packed bf16 weights (one 64-byte load) widen with one shift (even elements) and one mask (odd
/// elements); the input is laid out per 32-element group as 16 even then 16 odd values
/// (<see cref="FourBitGemvKernel.Deinterleave"/>), as the 4-bit kernel reads it. .NET 10 exposes no AVX-512 BF16 dot
/// product (<c>vdpbf16ps</c>), so the products are fp32 multiply-adds: two per 64 bytes and row. Four outputs are summed
/// per pass (<see cref="Avx512Quads{TRows}"/>), so each input vector loaded serves four outputs; 5–8 rows are two
/// passes. Every weight and input is exact in fp32, so the
/// sums differ from the bf16 matmul's (fp32 accumulation, one rounding to bf16) only in summation order.
/// </summary>
internal static unsafe class Bf16GemvKernel
{
    private const int Group = 32;

    /// <summary>Whether the kernel reads this row length on this CPU (AVX-512, whole 32-element groups).</summary>
    public static bool Supports(long inFeatures) => Avx512F.IsSupported && inFeatures % Group == 0;

    /// <summary>Output rows [o0, o1) for all input rows; <paramref name="x"/> is [rows, in] fp32, deinterleaved.</summary>
    public static void Run(ushort* w, int inFeatures, float* x, int rows, long o0, long o1, in GemvOutput y)
    {
        // 5–8 rows: rows 0–3, then the rest, each pass over four outputs at a time
        if (rows is < 1 or > FusedGemv.MaxRows)
            throw new ArgumentOutOfRangeException(nameof(rows), $"the gemv kernel takes 1 to {FusedGemv.MaxRows} rows, not {rows}");
        Avx512Rows(w, inFeatures, x, Math.Min(rows, 4), o0, o1, y);
        if (rows > 4) Avx512Rows(w, inFeatures, x + 4L * inFeatures, rows - 4, o0, o1, y.FromRow(4));
    }

    private static void Avx512Rows(ushort* w, int inFeatures, float* x, int rows, long o0, long o1, in GemvOutput y)
    {
        switch (rows)
        {
            case 1: Avx512Quads<Rows1>(w, inFeatures, x, o0, o1, y); break;
            case 2: Avx512Quads<Rows2>(w, inFeatures, x, o0, o1, y); break;
            case 3: Avx512Quads<Rows3>(w, inFeatures, x, o0, o1, y); break;
            default: Avx512Quads<Rows4>(w, inFeatures, x, o0, o1, y); break;
        }
    }

    /// <summary>One output at a time, 1–4 rows: the last 1–3 outputs of a range <see cref="Avx512Quads{TRows}"/> leaves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Avx512<TRows>(ushort* w, int inFeatures, float* x, long o0, long o1, in GemvOutput y) where TRows : struct, IGemvRows
    {
        nint inF = inFeatures;
        float* x0 = x, x1 = x0 + inF, x2 = x1 + inF, x3 = x2 + inF;
        Vector512<uint> highHalves = Vector512.Create(0xFFFF0000u);
        for (long o = o0; o < o1; o++)
        {
            uint* p = (uint*)(w + o * inF);
            // even and odd elements in separate accumulators: two independent multiply-add chains per row
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
            for (nint g = 0; g < inF; g += Group, p += Group / 2)
            {
                Vector512<uint> pairs = Vector512.Load(p); // dword j: element 2j in the low word, 2j+1 in the high word
                Vector512<float> even = (pairs << 16).AsSingle(), odd = (pairs & highHalves).AsSingle();
                nint h = g + Group / 2;
                a0 = Avx512F.FusedMultiplyAdd(even, Vector512.Load(x0 + g), a0);
                b0 = Avx512F.FusedMultiplyAdd(odd, Vector512.Load(x0 + h), b0);
                if (TRows.Count > 1) { a1 = Avx512F.FusedMultiplyAdd(even, Vector512.Load(x1 + g), a1); b1 = Avx512F.FusedMultiplyAdd(odd, Vector512.Load(x1 + h), b1); }
                if (TRows.Count > 2) { a2 = Avx512F.FusedMultiplyAdd(even, Vector512.Load(x2 + g), a2); b2 = Avx512F.FusedMultiplyAdd(odd, Vector512.Load(x2 + h), b2); }
                if (TRows.Count > 3) { a3 = Avx512F.FusedMultiplyAdd(even, Vector512.Load(x3 + g), a3); b3 = Avx512F.FusedMultiplyAdd(odd, Vector512.Load(x3 + h), b3); }
            }
            y.Store(0, o, Vector512.Sum(a0 + b0));
            if (TRows.Count > 1) y.Store(1, o, Vector512.Sum(a1 + b1));
            if (TRows.Count > 2) y.Store(2, o, Vector512.Sum(a2 + b2));
            if (TRows.Count > 3) y.Store(3, o, Vector512.Sum(a3 + b3));
        }
    }

    /// <summary>
    /// 1–4 rows, four output rows per pass, as <see cref="FourBitGemvKernel"/> does: each input vector loaded feeds
    /// four outputs' multiply-adds, so at 4 rows the loop no longer loads 8 input vectors (from L2: 4 rows of a
    /// 2048-wide input do not stay in L1 beside the 64 bytes of weights per group) for every 8 multiply-adds. Each
    /// output sums even and odd elements into one accumulator (16 at 4 rows); only the fp32 summation order differs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Avx512Quads<TRows>(ushort* w, int inFeatures, float* x, long o0, long o1, in GemvOutput y) where TRows : struct, IGemvRows
    {
        Debug.Assert(TRows.Count <= 4);
        nint inF = inFeatures, rowWords = inF / 2; // a row is inF / 2 dwords of two bf16 each
        float* x0 = x, x1 = x0 + inF, x2 = x1 + inF, x3 = x2 + inF;
        Vector512<uint> highHalves = Vector512.Create(0xFFFF0000u);
        long o = o0;
        for (; o + 4 <= o1; o += 4)
        {
            uint* p = (uint*)(w + o * inF);
            // a, b, c, d: outputs o .. o + 3; digit: input row
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
            Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, d0 = default, d1 = default, d2 = default, d3 = default;
            for (nint g = 0; g < inF; g += Group, p += Group / 2)
            {
                // dword j: element 2j in the low word, 2j+1 in the high word. Evens of all four outputs, then odds:
                // 4 widened weight vectors live at a time, which leaves the register allocator room beside 16 accumulators
                Vector512<uint> pA = Vector512.Load(p), pB = Vector512.Load(p + rowWords), pC = Vector512.Load(p + 2 * rowWords), pD = Vector512.Load(p + 3 * rowWords);
                {
                    // even elements: the first 16 of the group's input layout
                    Vector512<float> wA = (pA << 16).AsSingle(), wB = (pB << 16).AsSingle(), wC = (pC << 16).AsSingle(), wD = (pD << 16).AsSingle();
                    { Vector512<float> xr = Vector512.Load(x0 + g); a0 = Avx512F.FusedMultiplyAdd(xr, wA, a0); b0 = Avx512F.FusedMultiplyAdd(xr, wB, b0); c0 = Avx512F.FusedMultiplyAdd(xr, wC, c0); d0 = Avx512F.FusedMultiplyAdd(xr, wD, d0); }
                    if (TRows.Count > 1) { Vector512<float> xr = Vector512.Load(x1 + g); a1 = Avx512F.FusedMultiplyAdd(xr, wA, a1); b1 = Avx512F.FusedMultiplyAdd(xr, wB, b1); c1 = Avx512F.FusedMultiplyAdd(xr, wC, c1); d1 = Avx512F.FusedMultiplyAdd(xr, wD, d1); }
                    if (TRows.Count > 2) { Vector512<float> xr = Vector512.Load(x2 + g); a2 = Avx512F.FusedMultiplyAdd(xr, wA, a2); b2 = Avx512F.FusedMultiplyAdd(xr, wB, b2); c2 = Avx512F.FusedMultiplyAdd(xr, wC, c2); d2 = Avx512F.FusedMultiplyAdd(xr, wD, d2); }
                    if (TRows.Count > 3) { Vector512<float> xr = Vector512.Load(x3 + g); a3 = Avx512F.FusedMultiplyAdd(xr, wA, a3); b3 = Avx512F.FusedMultiplyAdd(xr, wB, b3); c3 = Avx512F.FusedMultiplyAdd(xr, wC, c3); d3 = Avx512F.FusedMultiplyAdd(xr, wD, d3); }
                }
                {
                    // odd elements: the last 16
                    Vector512<float> wA = (pA & highHalves).AsSingle(), wB = (pB & highHalves).AsSingle(), wC = (pC & highHalves).AsSingle(), wD = (pD & highHalves).AsSingle();
                    { Vector512<float> xr = Vector512.Load(x0 + g + Group / 2); a0 = Avx512F.FusedMultiplyAdd(xr, wA, a0); b0 = Avx512F.FusedMultiplyAdd(xr, wB, b0); c0 = Avx512F.FusedMultiplyAdd(xr, wC, c0); d0 = Avx512F.FusedMultiplyAdd(xr, wD, d0); }
                    if (TRows.Count > 1) { Vector512<float> xr = Vector512.Load(x1 + g + Group / 2); a1 = Avx512F.FusedMultiplyAdd(xr, wA, a1); b1 = Avx512F.FusedMultiplyAdd(xr, wB, b1); c1 = Avx512F.FusedMultiplyAdd(xr, wC, c1); d1 = Avx512F.FusedMultiplyAdd(xr, wD, d1); }
                    if (TRows.Count > 2) { Vector512<float> xr = Vector512.Load(x2 + g + Group / 2); a2 = Avx512F.FusedMultiplyAdd(xr, wA, a2); b2 = Avx512F.FusedMultiplyAdd(xr, wB, b2); c2 = Avx512F.FusedMultiplyAdd(xr, wC, c2); d2 = Avx512F.FusedMultiplyAdd(xr, wD, d2); }
                    if (TRows.Count > 3) { Vector512<float> xr = Vector512.Load(x3 + g + Group / 2); a3 = Avx512F.FusedMultiplyAdd(xr, wA, a3); b3 = Avx512F.FusedMultiplyAdd(xr, wB, b3); c3 = Avx512F.FusedMultiplyAdd(xr, wC, c3); d3 = Avx512F.FusedMultiplyAdd(xr, wD, d3); }
                }
            }
            { y.Store(0, o, Vector512.Sum(a0)); y.Store(0, o + 1, Vector512.Sum(b0)); y.Store(0, o + 2, Vector512.Sum(c0)); y.Store(0, o + 3, Vector512.Sum(d0)); }
            if (TRows.Count > 1) { y.Store(1, o, Vector512.Sum(a1)); y.Store(1, o + 1, Vector512.Sum(b1)); y.Store(1, o + 2, Vector512.Sum(c1)); y.Store(1, o + 3, Vector512.Sum(d1)); }
            if (TRows.Count > 2) { y.Store(2, o, Vector512.Sum(a2)); y.Store(2, o + 1, Vector512.Sum(b2)); y.Store(2, o + 2, Vector512.Sum(c2)); y.Store(2, o + 3, Vector512.Sum(d2)); }
            if (TRows.Count > 3) { y.Store(3, o, Vector512.Sum(a3)); y.Store(3, o + 1, Vector512.Sum(b3)); y.Store(3, o + 2, Vector512.Sum(c3)); y.Store(3, o + 3, Vector512.Sum(d3)); }
        }
        if (o < o1) Avx512<TRows>(w, inFeatures, x, o, o1, y); // the last 1–3 outputs
    }
}
