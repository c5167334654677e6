using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization;

/// <summary>
/// The LLM.int8() matmul (Dettmers et al. 2022; bitsandbytes <c>int8_mixed_scaled_mm</c>):
/// <c>Y = (CA·CBᵀ) ⊙ (SCA ⊗ SCB) / 127² + X[:, cols] · (CB[:, cols] · SCB / 127)ᵀ</c>,
/// the first term from int8 codes, the second (outlier columns) in the input's 16-bit dtype.
/// </summary>
public static class LlmInt8
{
    /// <summary>
    /// 1/127² as bitsandbytes' CUDA kernels write it (<c>MM_DEQUANT_CONST 6.200012e-05f</c>). Its pure-torch
    /// <c>int8_mm_dequant</c> (and reference-algorithms.md) have 6.200124e-05, a digit swap that is 1.8e-5 too large.
    /// </summary>
    public const float InverseScaleSquared = 6.200012e-05f;

    /// <summary>Quantizes activations [rows, in] row-wise with outlier extraction (threshold 0 = no outliers).</summary>
    public static Int8Activations QuantizeActivations(Tensor x, double threshold)
    {
        if (x.dim() != 2) throw new ArgumentException($"activations must be 2-D [rows, in], got [{string.Join(", ", x.shape)}]", nameof(x));
        using var scope = NewDisposeScope();
        Tensor a = x.detach().to(ScalarType.Float32);
        Tensor cols;
        if (threshold > 0)
        {
            Tensor outliers = a.abs().ge(threshold);
            cols = outliers.any(0).nonzero().reshape(-1);
            a = a.masked_fill(outliers, 0.0);
        }
        else cols = empty([0], ScalarType.Int64, device: x.device);
        Tensor sca = a.abs().amax([1]);
        Tensor scale = full_like(sca, 127.0f).div(sca);
        Tensor ca = (a * scale.unsqueeze(1)).round().nan_to_num(0.0);
        if (cols.numel() > 0) ca = ca.index_fill(1, cols, 0.0);
        return new Int8Activations(ca.to(ScalarType.Int8).MoveToOuterDisposeScope(), sca.MoveToOuterDisposeScope(), cols.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// y = x·Wᵀ with the LLM.int8() decomposition; x is [..., in] in any float dtype, y has x's dtype.
    /// The int8×int8 product is accumulated in fp32 (bitsandbytes' CPU backend does the same; exact while
    /// 127²·in &lt; 2²⁴, and within fp32 rounding beyond).
    /// </summary>
    public static Tensor Linear(Tensor x, Int8RowwiseTensor weight, double threshold)
    {
        long inFeatures = weight.Shape[1], outFeatures = weight.Shape[0];
        if (x.shape[^1] != inFeatures)
            throw new ArgumentException($"input has {x.shape[^1]} features, the int8 weight expects {inFeatures}", nameof(x));
        using var scope = NewDisposeScope();
        long[] outShape = [.. x.shape[..^1], outFeatures];
        Tensor x2 = x.reshape(-1, inFeatures);
        using Int8Activations act = QuantizeActivations(x2, threshold);
        // CB as fp32 for the fp32 matmul: on the CPU in this thread's reused workspace (no fresh 4·n-byte tensor per call)
        Tensor cb = weight.Device.type == DeviceType.CPU
            ? WeightWorkspace.Borrow(weight.Shape, ScalarType.Float32).copy_(weight.CB)
            : weight.CB.to(ScalarType.Float32);
        Tensor acc = act.CA.to(ScalarType.Float32).matmul(cb.t());
        Tensor y = (acc * (act.SCA.unsqueeze(1) * weight.SCB.unsqueeze(0)) * InverseScaleSquared).to(x.dtype);
        if (act.OutlierColumns.numel() > 0)
        {
            Tensor subA = x2.index_select(1, act.OutlierColumns);
            Tensor subB = (weight.CB.index_select(1, act.OutlierColumns).to(ScalarType.Float32) * weight.SCB.unsqueeze(1)
                           * Int8RowwiseTensor.InverseScale).to(x.dtype);
            y = y.addmm(subA, subB.t());
        }
        return y.reshape(outShape).MoveToOuterDisposeScope();
    }
}
