namespace FinQLoRA.Quantization;

/// <summary>
/// bitsandbytes' signed 8-bit "dynamic" code, <c>create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)</c>,
/// used to quantize the 4-bit block scales (double quantization), and the nearest-code search of its CUDA kernel
/// (<c>dQuantize&lt;0&gt;</c>).
/// <para>
/// The table is computed in float32 exactly as the Python code does it with torch on the CPU: for i = 0..6,
/// <c>torch.linspace(0.1, 1, 2^i + 1)</c> (libtorch's formula: <c>start + step·k</c> in the first half,
/// <c>end − step·(steps−1−k)</c> in the second, step = (end − start)/(steps − 1), all in float),
/// means of neighbours <c>(b[k] + b[k+1]) / 2</c>, times <c>(float)10^(i−6)</c>, both signs; then 0 and 1.0, sorted.
/// Verified bit for bit against the same op sequence run through libtorch (TorchSharp) in
/// <c>DynamicMapTests</c>; a reader should still prefer the <c>nested_quant_map</c> stored in a checkpoint.
/// </para>
/// </summary>
public static class DynamicMap
{
    private static readonly float[] Signed8Bit = Create();

    /// <summary>The 256 sorted values (index = 8-bit code). Code 0 is -0.99296875, code 255 is 1.0.</summary>
    public static ReadOnlySpan<float> Values => Signed8Bit;

    private static float[] Create()
    {
        const int maxExponentBits = 7, nonSignBits = 7;
        var data = new List<float>(256);
        for (int i = 0; i < maxExponentBits; i++)
        {
            int fractionItems = (1 << (i + nonSignBits - maxExponentBits)) + 1;
            float[] boundaries = TorchLinspace(0.1f, 1.0f, fractionItems);
            // Python: 10 ** (i - 6) is a double (1e-06 ... 1); torch casts the scalar to float32 before multiplying.
            float scale = (float)Math.Pow(10, i - (maxExponentBits - 1));
            for (int k = 0; k + 1 < boundaries.Length; k++)
            {
                float mean = (boundaries[k] + boundaries[k + 1]) / 2.0f;
                data.Add(scale * mean);
                data.Add(-scale * mean);
            }
        }
        // additional_items = 2^(7-7) - 1 = 0: no linear region.
        data.Add(0f);
        data.Add(1.0f);
        if (data.Count != 256) throw new InvalidOperationException($"dynamic map has {data.Count} entries, expected 256");
        data.Sort();
        return data.ToArray();
    }

    /// <summary><c>torch.linspace(start, end, steps)</c> for float32 on the CPU (aten linspace_kernel, scalar formula).</summary>
    internal static float[] TorchLinspace(float start, float end, int steps)
    {
        var r = new float[steps];
        if (steps == 1) { r[0] = start; return r; }
        float step = (end - start) / (steps - 1);
        int halfway = steps / 2;
        for (int k = 0; k < steps; k++)
            r[k] = k < halfway ? start + step * k : end - step * (steps - k - 1);
        return r;
    }

    /// <summary>
    /// The code <c>dQuantize&lt;0&gt;</c> picks for a value normalised to [-1, 1]: a 7-step binary search from the middle of
    /// the 256 sorted entries, then a midpoint comparison against the neighbour on the side the value lies
    /// (strictly greater for the upper neighbour, strictly less for the lower one). NaN ends at code 0 as on CUDA.
    /// </summary>
    public static byte Encode(ReadOnlySpan<float> code, float x)
    {
        int pivot = 127, upperPivot = 255, lowerPivot = 0;
        float lower = -1.0f, upper = 1.0f;
        float val = code[pivot];
        for (int i = 64; i > 0; i >>= 1)
        {
            if (x > val) { lowerPivot = pivot; lower = val; pivot += i; }
            else { upperPivot = pivot; upper = val; pivot -= i; }
            val = code[pivot];
        }
        if (upperPivot == 255) upper = code[upperPivot];
        if (lowerPivot == 0) lower = code[lowerPivot];

        if (x > val)
        {
            float midpoint = (upper + val) * 0.5f;
            return (byte)(x > midpoint ? upperPivot : pivot);
        }
        else
        {
            float midpoint = (lower + val) * 0.5f;
            return (byte)(x < midpoint ? lowerPivot : pivot);
        }
    }
}
