using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace FinQLoRA.Quantization.Gemv;

/// <summary>
/// Where a gemv kernel's fp32 sums go, and what happens to them on the way, in the order the unfused path does it:
/// the base output is rounded to the input's dtype (the matmul's output), then each row's LoRA delta is added in fp32
/// and the sum rounded again (<c>(result + lora).to(result.dtype)</c> in <see cref="FinQLoRA.Adapters.LoraLinear"/>).
/// </summary>
internal readonly unsafe struct GemvOutput
{
    private readonly void* _y;
    private readonly bool _bf16;
    private readonly long _out;
    private readonly float* _u;
    private readonly int _rank;
    private readonly long* _offsets;
    private readonly float* _b;
    private readonly long _strideOut;
    private readonly long _strideRank;

    /// <param name="y">[rows, out] bf16 (bits) or fp32</param>
    /// <param name="u">null when there is no low-rank term; else [rows, rank] with <paramref name="offsets"/> per row</param>
    public GemvOutput(void* y, bool bf16, long outFeatures, float* u = null, int rank = 0, long* offsets = null,
        float* b = null, long strideOut = 0, long strideRank = 0)
    {
        _y = y; _bf16 = bf16; _out = outFeatures;
        _u = u; _rank = rank; _offsets = offsets; _b = b; _strideOut = strideOut; _strideRank = strideRank;
    }

    public bool Bf16 => _bf16;

    /// <summary>The same output seen from input row <paramref name="first"/> on: a kernel pass over rows
    /// [first, rows) stores its row 0 as row <paramref name="first"/>, with that row's low-rank term.</summary>
    public GemvOutput FromRow(int first)
    {
        long at = first * _out;
        void* y = _bf16 ? (ushort*)_y + at : (float*)_y + at;
        return new GemvOutput(y, _bf16, _out, _u == null ? null : _u + (long)first * _rank, _rank,
            _offsets == null ? null : _offsets + first, _b, _strideOut, _strideRank);
    }

    /// <summary>The value as the output dtype holds it (bf16 values are exact in fp32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float ToOutputPrecision(float value) =>
        _bf16 ? BFloat16Rounding.Widen(BFloat16Rounding.Round(value)) : value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(int row, long o, float sum)
    {
        float value = ToOutputPrecision(sum);
        if (_u != null && _offsets[row] >= 0)
        {
            float* b = _b + _offsets[row] + o * _strideOut;
            float* u = _u + (long)row * _rank;
            float delta = _strideRank == 1 ? ContiguousDot(u, b, _rank) : StridedDot(u, b, _rank, _strideRank);
            value = ToOutputPrecision(value + delta);
        }
        long at = row * _out + o;
        if (_bf16) ((ushort*)_y)[at] = BFloat16Rounding.Round(value);
        else ((float*)_y)[at] = value;
    }

    /// <summary>Σₖ u[k]·b[k] over lora_B's contiguous row: eight ranks per vector (rank 8 and 16 have no scalar tail).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ContiguousDot(float* u, float* b, int rank)
    {
        int k = 0;
        float sum = 0f;
        if (rank >= Vector256<float>.Count)
        {
            Vector256<float> acc = Vector256.Load(u) * Vector256.Load(b);
            for (k = Vector256<float>.Count; k + Vector256<float>.Count <= rank; k += Vector256<float>.Count)
                acc = Vector256.FusedMultiplyAdd(Vector256.Load(u + k), Vector256.Load(b + k), acc);
            sum = Vector256.Sum(acc);
        }
        for (; k < rank; k++) sum += u[k] * b[k];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float StridedDot(float* u, float* b, int rank, long stride)
    {
        float sum = 0f;
        for (int k = 0; k < rank; k++) sum += u[k] * b[k * stride];
        return sum;
    }
}
