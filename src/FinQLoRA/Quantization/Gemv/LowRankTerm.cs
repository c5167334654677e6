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

    /// <summary>u = s·A·x for each row with an adapter, summed in fp32 like x·Aᵀ, then scaled (as <c>linear(x, A) · s</c>).</summary>
    public unsafe void LowRankInputs(float* x, int rows, int inFeatures, float* a, float* u)
    {
        for (int r = 0; r < rows; r++)
        {
            if (AOffsets[r] < 0) continue;
            float* xr = x + (long)r * inFeatures;
            for (int k = 0; k < Rank; k++)
            {
                float* ak = a + AOffsets[r] + k * AStrideRank;
                float sum = 0f;
                for (int i = 0; i < inFeatures; i++) sum += xr[i] * ak[i * AStrideIn];
                u[r * Rank + k] = sum * Scales[r];
            }
        }
    }
}
