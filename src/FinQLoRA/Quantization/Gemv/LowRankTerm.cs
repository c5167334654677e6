using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization.Gemv;

/// <summary>
/// The LoRA delta a fused gemv adds to each output, <c>y[r, o] += Σₖ u[r, k] · B_r[o, k]</c> with
/// <c>u[r] = s_r · A_r · x[r]</c> (rank values per row, computed by the gemv before the weight pass), for row r's own
/// adapter. All adapters' A live in one fp32 tensor and all B in another; row r's start at <see cref="AOffsets"/>[r] and
/// <see cref="BOffsets"/>[r] (−1: the row has no adapter), element (i, k) of A sits <c>i·AStrideIn + k·AStrideRank</c>
/// further on and element (o, k) of B <c>o·BStrideOut + k·BStrideRank</c> — <c>lora_A</c> [rank, in] and <c>lora_B</c>
/// [out, rank] for one adapter, [in, rank] and [rank, out] per stack index of <see cref="FinQLoRA.Adapters.StackedLora"/>.
/// </summary>
/// <param name="A">fp32, contiguous, on the CPU</param>
/// <param name="B">fp32, contiguous, on the CPU</param>
/// <param name="Scales">s per row (α/r or α/√r of its adapter)</param>
internal sealed record LowRankTerm(int Rank, Tensor A, long AStrideIn, long AStrideRank, long[] AOffsets,
    Tensor B, long BStrideOut, long BStrideRank, long[] BOffsets, float[] Scales)
{
    public void Validate(int rows, long inFeatures, long outFeatures)
    {
        if (A.dtype != ScalarType.Float32 || B.dtype != ScalarType.Float32 || !A.is_contiguous() || !B.is_contiguous()
            || A.device_type != DeviceType.CPU || B.device_type != DeviceType.CPU)
            throw new ArgumentException("the low-rank term's A and B must be contiguous fp32 CPU tensors");
        if (AOffsets.Length != rows || BOffsets.Length != rows || Scales.Length != rows)
            throw new ArgumentException($"the low-rank term has {AOffsets.Length}/{BOffsets.Length}/{Scales.Length} row entries; the input has {rows} rows");
        long lastA = (inFeatures - 1) * AStrideIn + (Rank - 1) * AStrideRank, lastB = (outFeatures - 1) * BStrideOut + (Rank - 1) * BStrideRank;
        for (int r = 0; r < rows; r++)
            if ((AOffsets[r] >= 0) != (BOffsets[r] >= 0) || AOffsets[r] + lastA >= A.numel() || BOffsets[r] + lastB >= B.numel())
                throw new ArgumentException($"the low-rank term's row {r} (A at {AOffsets[r]}, B at {BOffsets[r]}) does not fit A ({A.numel()} values) and B ({B.numel()}) for {inFeatures} → {outFeatures} at rank {Rank}");
    }

    /// <summary>u = s·A·x for each row with an adapter, summed in fp32 like x·Aᵀ, then scaled (as <c>linear(x, A) · s</c>).
    /// Vector sums over A's contiguous direction (lora_A's rows, or the stack's rank), so the term costs a few
    /// microseconds a projection rather than a scalar chain of in × rank dependent adds.</summary>
    public unsafe void LowRankInputs(float* x, int rows, int inFeatures, float* a, float* u)
    {
        for (int r = 0; r < rows; r++)
        {
            if (AOffsets[r] < 0) continue;
            float* xr = x + (long)r * inFeatures, ar = a + AOffsets[r], ur = u + r * Rank;
            if (AStrideIn == 1) for (int k = 0; k < Rank; k++) ur[k] = Dot(xr, ar + k * AStrideRank, inFeatures);
            else if (AStrideRank == 1) RankContiguous(xr, ar, ur, inFeatures);
            else
                for (int k = 0; k < Rank; k++)
                {
                    float sum = 0f;
                    for (int i = 0; i < inFeatures; i++) sum += xr[i] * ar[k + i * AStrideIn];
                    ur[k] = sum;
                }
            for (int k = 0; k < Rank; k++) ur[k] *= Scales[r];
        }
    }

    /// <summary>u[k] = Σᵢ x[i]·A[i, k] where A's rank is contiguous (the stack's [in, rank]): eight ranks per vector.</summary>
    private unsafe void RankContiguous(float* x, float* a, float* u, int inFeatures)
    {
        int k = 0;
        for (; k + Vector256<float>.Count <= Rank; k += Vector256<float>.Count)
        {
            Vector256<float> acc = Vector256<float>.Zero;
            for (int i = 0; i < inFeatures; i++) acc = Vector256.FusedMultiplyAdd(Vector256.Create(x[i]), Vector256.Load(a + k + i * AStrideIn), acc);
            acc.Store(u + k);
        }
        for (; k < Rank; k++)
        {
            float sum = 0f;
            for (int i = 0; i < inFeatures; i++) sum += x[i] * a[k + i * AStrideIn];
            u[k] = sum;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe float Dot(float* x, float* y, int n)
    {
        int i = 0;
        Vector256<float> s0 = Vector256<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
        for (; i + 32 <= n; i += 32)
        {
            s0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i), Vector256.Load(y + i), s0);
            s1 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 8), Vector256.Load(y + i + 8), s1);
            s2 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 16), Vector256.Load(y + i + 16), s2);
            s3 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 24), Vector256.Load(y + i + 24), s3);
        }
        float sum = Vector256.Sum((s0 + s1) + (s2 + s3));
        for (; i < n; i++) sum += x[i] * y[i];
        return sum;
    }
}
