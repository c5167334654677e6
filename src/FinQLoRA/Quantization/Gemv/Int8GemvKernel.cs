using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace FinQLoRA.Quantization.Gemv;

/// <summary>
/// The LLM.int8() product (<see cref="LlmInt8.Linear"/>) for 1–8 rows without widening CB to fp32: the int8 codes of
/// the weight and of the row-quantized activations are multiplied as int16 pairs (<c>vpmaddwd</c>) into int32, which
/// is exact (torch's fp32 matmul of the same integers is exact while 127²·in &lt; 2²⁴ and rounds beyond), then
/// scaled as <c>(acc · (SCA[r]·SCB[o])) · 1/127²</c> like the unfused path. Outlier columns add
/// <c>x[r, c] · dtype((CB[o, c]·SCB[o])·1/127)</c> to the rounded main term, as its <c>addmm</c> does.
/// </summary>
internal static unsafe class Int8GemvKernel
{
    private const int Step = 32; // int8 weights per vector step

    /// <param name="codes">CB int8 [out, in]</param>
    /// <param name="rowScales">SCB fp32 [out]</param>
    public readonly struct Weight(sbyte* codes, float* rowScales, int inFeatures, long outFeatures)
    {
        public readonly sbyte* Codes = codes;
        public readonly float* RowScales = rowScales;
        public readonly int In = inFeatures;
        public readonly long Out = outFeatures;
    }

    /// <param name="codes">CA widened to int16 [rows, in]</param>
    /// <param name="scales">SCA fp32 [rows]</param>
    /// <param name="values">x in fp32 [rows, in] (read at the outlier columns only)</param>
    /// <param name="outlierColumns">the columns handled in the input's dtype (none: <paramref name="outlierCount"/> 0)</param>
    public readonly struct Activations(short* codes, float* scales, float* values, long* outlierColumns, int outlierCount)
    {
        public readonly short* Codes = codes;
        public readonly float* Scales = scales;
        public readonly float* Values = values;
        public readonly long* OutlierColumns = outlierColumns;
        public readonly int OutlierCount = outlierCount;
    }

    public static DequantKernelPath Resolve(DequantKernelPath path) => path switch
    {
        DequantKernelPath.Auto => Avx512BW.IsSupported ? DequantKernelPath.Avx512 : Avx2.IsSupported ? DequantKernelPath.Avx2 : DequantKernelPath.Scalar,
        _ => Dequantize4BitKernel.Resolve(path),
    };

    public static void Run(in Weight w, in Activations a, int rows, long o0, long o1, in GemvOutput y, DequantKernelPath path)
    {
        switch (path)
        {
            case DequantKernelPath.Avx512:
                switch (rows)
                {
                    case 1: Avx512<Rows1>(w, a, o0, o1, y); break;
                    case 2: Avx512<Rows2>(w, a, o0, o1, y); break;
                    case 3: Avx512<Rows3>(w, a, o0, o1, y); break;
                    case 4: Avx512<Rows4>(w, a, o0, o1, y); break;
                    case 5: Avx512<Rows5>(w, a, o0, o1, y); break;
                    case 6: Avx512<Rows6>(w, a, o0, o1, y); break;
                    case 7: Avx512<Rows7>(w, a, o0, o1, y); break;
                    case 8: Avx512<Rows8>(w, a, o0, o1, y); break;
                    default: throw new ArgumentOutOfRangeException(nameof(rows), $"the gemv kernel takes 1 to {FusedGemv.MaxRows} rows, not {rows}");
                }
                break;
            case DequantKernelPath.Avx2: Avx2Rows(w, a, rows, o0, o1, y); break;
            default: Scalar(w, a, rows, o0, o1, y); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Avx512<TRows>(in Weight w, in Activations a, long o0, long o1, in GemvOutput y) where TRows : struct, IGemvRows
    {
        int inF = w.In;
        int vectorEnd = inF - inF % Step;
        short* x0 = a.Codes, x1 = x0 + inF, x2 = x1 + inF, x3 = x2 + inF, x4 = x3 + inF, x5 = x4 + inF, x6 = x5 + inF, x7 = x6 + inF;
        for (long o = o0; o < o1; o++)
        {
            sbyte* cb = w.Codes + o * inF;
            Vector512<int> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            for (int i = 0; i < vectorEnd; i += Step)
            {
                Vector512<short> c = Avx512BW.ConvertToVector512Int16(Vector256.Load(cb + i));
                a0 += Avx512BW.MultiplyAddAdjacent(c, Vector512.Load(x0 + i));
                if (TRows.Count > 1) a1 += Avx512BW.MultiplyAddAdjacent(c, Vector512.Load(x1 + i));
                if (TRows.Count > 2) a2 += Avx512BW.MultiplyAddAdjacent(c, Vector512.Load(x2 + i));
                if (TRows.Count > 3) a3 += Avx512BW.MultiplyAddAdjacent(c, Vector512.Load(x3 + i));
                if (TRows.Count > 4) a4 += Avx512BW.MultiplyAddAdjacent(c, Vector512.Load(x4 + i));
                if (TRows.Count > 5) a5 += Avx512BW.MultiplyAddAdjacent(c, Vector512.Load(x5 + i));
                if (TRows.Count > 6) a6 += Avx512BW.MultiplyAddAdjacent(c, Vector512.Load(x6 + i));
                if (TRows.Count > 7) a7 += Avx512BW.MultiplyAddAdjacent(c, Vector512.Load(x7 + i));
            }
            Finish(w, a, o, 0, Vector512.Sum(a0), vectorEnd, y);
            if (TRows.Count > 1) Finish(w, a, o, 1, Vector512.Sum(a1), vectorEnd, y);
            if (TRows.Count > 2) Finish(w, a, o, 2, Vector512.Sum(a2), vectorEnd, y);
            if (TRows.Count > 3) Finish(w, a, o, 3, Vector512.Sum(a3), vectorEnd, y);
            if (TRows.Count > 4) Finish(w, a, o, 4, Vector512.Sum(a4), vectorEnd, y);
            if (TRows.Count > 5) Finish(w, a, o, 5, Vector512.Sum(a5), vectorEnd, y);
            if (TRows.Count > 6) Finish(w, a, o, 6, Vector512.Sum(a6), vectorEnd, y);
            if (TRows.Count > 7) Finish(w, a, o, 7, Vector512.Sum(a7), vectorEnd, y);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Avx2Rows(in Weight w, in Activations a, int rows, long o0, long o1, in GemvOutput y)
    {
        int inF = w.In;
        const int step = 16;
        int vectorEnd = inF - inF % step;
        Vector256<int>* acc = stackalloc Vector256<int>[FusedGemv.MaxRows];
        for (long o = o0; o < o1; o++)
        {
            sbyte* cb = w.Codes + o * inF;
            for (int r = 0; r < rows; r++) acc[r] = default;
            for (int i = 0; i < vectorEnd; i += step)
            {
                Vector256<short> c = Avx2.ConvertToVector256Int16(cb + i);
                for (int r = 0; r < rows; r++)
                    acc[r] += Avx2.MultiplyAddAdjacent(c, Vector256.Load(a.Codes + (long)r * inF + i));
            }
            for (int r = 0; r < rows; r++) Finish(w, a, o, r, Vector256.Sum(acc[r]), vectorEnd, y);
        }
    }

    private static void Scalar(in Weight w, in Activations a, int rows, long o0, long o1, in GemvOutput y)
    {
        for (long o = o0; o < o1; o++)
            for (int r = 0; r < rows; r++)
                Finish(w, a, o, r, 0, 0, y);
    }

    /// <summary>Adds the columns from <paramref name="from"/> on to the integer sum, scales it, adds the outlier
    /// columns and stores the result.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish(in Weight w, in Activations a, long o, int r, int sum, int from, in GemvOutput y)
    {
        int inF = w.In;
        sbyte* cb = w.Codes + o * inF;
        short* x = a.Codes + (long)r * inF;
        for (int i = from; i < inF; i++) sum += cb[i] * x[i];
        float scb = w.RowScales[o];
        float value = (sum * (a.Scales[r] * scb)) * LlmInt8.InverseScaleSquared;
        if (a.OutlierCount > 0)
        {
            float outliers = 0f;
            float* xr = a.Values + (long)r * inF;
            for (int k = 0; k < a.OutlierCount; k++)
            {
                long c = a.OutlierColumns[k];
                outliers += xr[c] * y.ToOutputPrecision((cb[c] * scb) * Int8RowwiseTensor.InverseScale);
            }
            value = y.ToOutputPrecision(value) + outliers;
        }
        y.Store(r, o, value);
    }
}
