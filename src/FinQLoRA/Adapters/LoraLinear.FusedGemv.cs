using FinQLoRA.Quantization;
using FinQLoRA.Quantization.Gemv;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

public sealed partial class LoraLinear
{
    /// <summary>
    /// The output by one fused pass over a quantized base (<see cref="FusedGemv"/>): u = s·A·x per row first (rank
    /// values, in the kernel), then B·u added to each output as it is summed, for the active adapter or each row's adapter of the
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
        else if (_active is { } name && _adapters[name] is { UseDora: false } adapter && adapter.A.dtype == ScalarType.Float32 && adapter.A.is_contiguous() && adapter.B.is_contiguous()
                 && !(adapter.Dropout > 0 && training))
            term = SingleAdapterTerm(adapter, (int)(x.numel() / InFeatures));
        else return null;
        return term is null ? null : FusedGemv.Multiply(x, q.Weight, q.Int8Threshold, term);
    }

    /// <summary>The active adapter's term for one row, as <see cref="FusedGemvForward"/> adds it to a fused gemv; null
    /// when no adapter is active. The managed single-token step adds it to its own products (it has checked that the
    /// adapter is one it computes: plain LoRA, fp32, contiguous, not in training).</summary>
    internal LowRankTerm? OneRowTerm() => _active is { } name ? SingleAdapterTerm(_adapters[name], rows: 1) : null;

    /// <summary>The term of the last single-adapter decode call, reused while the adapter, its tensors and the row count
    /// stay: a decode step then builds no arrays and no tensor handles per projection.</summary>
    private LowRankTerm? _singleAdapterTerm;

    private LowRankTerm SingleAdapterTerm(LoraAdapter adapter, int rows)
    {
        if (_singleAdapterTerm is { } last && ReferenceEquals(last.A, adapter.A) && ReferenceEquals(last.B, adapter.B)
            && last.AOffsets.Length == rows && last.Scales[0] == (float)adapter.Scaling)
            return last;
        // lora_A [rank, in] and lora_B [out, rank], as they are (the parameters themselves, read through their data
        // pointers): the kernel computes A·x itself, no torch op per call
        return _singleAdapterTerm = new LowRankTerm((int)adapter.Rank, adapter.A, AStrideIn: 1, AStrideRank: InFeatures, AOffsets: new long[rows],
            adapter.B, BStrideOut: adapter.Rank, BStrideRank: 1, BOffsets: new long[rows],
            Scales: Enumerable.Repeat((float)adapter.Scaling, rows).ToArray());
    }
}
