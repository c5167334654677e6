using static TorchSharp.torch;

namespace FinQLoRA.Quantization;

/// <summary>
/// Row-wise int8 activations of LLM.int8() (bitsandbytes <c>int8_vectorwise_quant</c> with a threshold): entries with
/// |x| ≥ threshold are outliers, zeroed before the row absmax so they do not inflate the scale; every column holding
/// an outlier is zeroed in <see cref="CA"/> and handled in 16-bit instead.
/// </summary>
/// <param name="CA">int8-valued codes [rows, in] (stored as int8).</param>
/// <param name="SCA">fp32 row absmax [rows] of the non-outlier entries.</param>
/// <param name="OutlierColumns">int64 indices of the outlier columns (empty when none or threshold 0).</param>
public sealed record Int8Activations(Tensor CA, Tensor SCA, Tensor OutlierColumns) : IDisposable
{
    public void Dispose()
    {
        CA.Dispose();
        SCA.Dispose();
        OutlierColumns.Dispose();
    }
}
