using FinQLoRA.Quantization;
using FinQLoRA.Quantization.Gemv;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

public sealed partial class LoraLinear
{
    /// <summary>
    /// The output by one fused pass over a quantized base (<see cref="FusedGemv"/>): u = s·A·x per row first (rank
    /// values), then B·u added to each output as it is summed, for the active adapter or each row's adapter of the
    /// stack. Null where the unfused path must run: a dense or biased base, more than 8 rows, gradients, dropout in
    /// training, DoRA, a gradient capture, or a base-only batch (whose base then takes the gemv by itself).
    /// </summary>
    internal Tensor? FusedGemvForward(Tensor x)
    {
        if (base_layer is not QuantizedLinear q || q.Bias is not null || Capture is not null || is_grad_enabled()
            || !FusedGemv.Applies(x, q.Weight))
            return null;
        LowRankTerm? term;
        if (Stacked is { Selection.Rows: { } rows } stacked)
        {
            if (stacked.Selection.BaseOnly) return null;
            term = stacked.GemvTerm(x, rows);
        }
        else if (_active is { } name && _adapters[name] is { UseDora: false } adapter && adapter.A.dtype == ScalarType.Float32
                 && !(adapter.Dropout > 0 && training))
        {
            long rowCount = x.numel() / InFeatures;
            Tensor u = (nn.functional.linear(x.detach().reshape(rowCount, InFeatures).to(ScalarType.Float32), adapter.A.detach()) * adapter.Scaling).contiguous();
            term = new LowRankTerm(u, adapter.B.detach().contiguous(), new long[rowCount], StrideOut: adapter.Rank, StrideRank: 1);
        }
        else return null;
        return term is null ? null : FusedGemv.Multiply(x, q.Weight, q.Int8Threshold, term);
    }
}
