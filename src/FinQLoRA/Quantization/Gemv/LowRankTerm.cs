using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization.Gemv;

/// <summary>
/// The LoRA delta a fused gemv adds to each output: <c>y[r, o] += Σₖ U[r, k] · B_r[o, k]</c>, where U = s·A·x[r] is
/// already computed (small: rank values per row) and B_r is the up-projection of row r's own adapter. All adapters'
/// B live in one fp32 tensor; row r's starts at <see cref="RowOffsets"/>[r] (−1: the row has no adapter), and element
/// (o, k) sits <c>o·StrideOut + k·StrideRank</c> further on — [out, rank] for one adapter (<c>lora_B</c>), [rank, out]
/// per stack index for <see cref="FinQLoRA.Adapters.StackedLora"/>.
/// </summary>
/// <param name="U">fp32 [rows, rank], contiguous, scale already applied.</param>
/// <param name="B">fp32, contiguous, on the CPU.</param>
internal sealed record LowRankTerm(Tensor U, Tensor B, long[] RowOffsets, long StrideOut, long StrideRank)
{
    public int Rank => (int)U.shape[1];

    public void Validate(int rows, long outFeatures)
    {
        if (U.dtype != ScalarType.Float32 || B.dtype != ScalarType.Float32 || !U.is_contiguous() || !B.is_contiguous()
            || U.device_type != DeviceType.CPU || B.device_type != DeviceType.CPU)
            throw new ArgumentException("the low-rank term's U and B must be contiguous fp32 CPU tensors");
        if (U.dim() != 2 || U.shape[0] != rows || RowOffsets.Length != rows)
            throw new ArgumentException($"the low-rank term has {U.shape[0]} rows of U and {RowOffsets.Length} offsets; the input has {rows} rows");
        long last = (outFeatures - 1) * StrideOut + (Rank - 1) * StrideRank;
        foreach (long offset in RowOffsets)
            if (offset >= 0 && offset + last >= B.numel())
                throw new ArgumentException($"the low-rank term's B ({B.numel()} values) is too small for offset {offset} with {outFeatures} outputs of rank {Rank}");
    }
}
