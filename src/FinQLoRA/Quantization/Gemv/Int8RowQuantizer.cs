namespace FinQLoRA.Quantization.Gemv;

/// <summary>
/// <see cref="LlmInt8.QuantizeActivations"/> for the 1–8 rows of a fused int8 gemv, in one managed pass instead of a
/// dozen libtorch calls (each costing more than its arithmetic on a few thousand values, per projection and token):
/// elements with |x| ≥ threshold are outliers and their columns (over all rows, ascending) are handled in the input's
/// dtype; the rest are scaled by <c>127 / max|x|</c> of their row (fp32 division and product, as torch computes
/// them), rounded half to even, a zero row giving zeros, and the outlier columns' codes set to 0. Each step is the
/// one the torch version takes, so the codes, scales and columns are the same values.
/// </summary>
internal static unsafe class Int8RowQuantizer
{
    /// <param name="x">fp32 [rows, in]</param>
    /// <param name="codes">[rows, in] int16 codes (written)</param>
    /// <param name="scales">[rows] SCA: each row's absmax without its outliers (written)</param>
    /// <param name="columns">at least <paramref name="inFeatures"/> entries: the outlier columns, ascending (written)</param>
    /// <returns>how many outlier columns</returns>
    public static int Quantize(float* x, int rows, int inFeatures, double threshold, short* codes, float* scales, long* columns)
    {
        float limit = (float)threshold;
        bool outliers = threshold > 0;
        int count = 0;
        if (outliers)
            for (int i = 0; i < inFeatures; i++)
                for (int r = 0; r < rows; r++)
                    if (MathF.Abs(x[(long)r * inFeatures + i]) >= limit)
                    {
                        columns[count++] = i;
                        break;
                    }
        for (int r = 0; r < rows; r++)
        {
            float* xr = x + (long)r * inFeatures;
            short* cr = codes + (long)r * inFeatures;
            float max = 0f;
            for (int i = 0; i < inFeatures; i++)
            {
                float a = MathF.Abs(xr[i]);
                if (!(outliers && a >= limit) && a > max) max = a;
                else if (float.IsNaN(a)) max = a; // amax propagates NaN; the row's codes then become 0, as nan_to_num makes them
            }
            scales[r] = max;
            float scale = 127f / max;
            for (int i = 0; i < inFeatures; i++)
            {
                float a = xr[i];
                if (outliers && MathF.Abs(a) >= limit) a = 0f;
                float code = MathF.Round(a * scale, MidpointRounding.ToEven);
                cr[i] = float.IsNaN(code) ? (short)0 : (short)code;
            }
            for (int c = 0; c < count; c++) cr[columns[c]] = 0;
        }
        return count;
    }
}
