using FinQLoRA.Quantization.Gemv;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// Every adapter of one projection stacked for heterogeneous batches (S-LoRA / Punica's gathered matmul): the rows of
/// a batch name different adapters, and the delta of the whole batch is one gathered batched matmul
/// <code>
///   y = W₀x + s[i] · (x · Aᵀ[i]) · Bᵀ[i]        i = the row's adapter index, per row
/// </code>
/// over A [n, in, r] and B [n, r, out] with ranks zero-padded to the largest (zero columns add exact zeros), not one
/// pass per adapter. Index 0, and any adapter that does not touch this projection, is all zeros. DoRA adapters
/// (inference only: their weights are frozen here) fold into a per-row output scale m/‖W₀ + s·BA‖, which is 1 for the
/// others. fp32 like <see cref="LoraLinear"/>'s adapter branch.
/// </summary>
public sealed class StackedLora : IDisposable
{
    private readonly Tensor _a;        // [n, in, r]
    private readonly Tensor _b;        // [n, r, out]
    private readonly Tensor _scale;    // [n]
    private readonly Tensor? _rowScale; // [n, out], only when some adapter is DoRA

    private StackedLora(Tensor a, Tensor b, Tensor scale, Tensor? rowScale, LoraRowSelection selection)
    {
        _a = a; _b = b; _scale = scale; _rowScale = rowScale;
        Selection = selection;
    }

    public LoraRowSelection Selection { get; }
    public int Count => (int)_a.shape[0];
    public long PaddedRank => _a.shape[2];

    /// <param name="order">adapter names by stack index; index 0 must be null (the base); a null further on is an
    /// empty index (zeros), which <see cref="TryWrite"/> can fill later</param>
    public static StackedLora Build(LoraLinear lora, IReadOnlyList<string?> order, LoraRowSelection selection)
    {
        if (order.Count == 0 || order[0] is not null) throw new ArgumentException("stack index 0 is the base (null)", nameof(order));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int n = order.Count;
        long inF = lora.InFeatures, outF = lora.OutFeatures;
        long rank = Math.Max(1, order.Where(o => o is not null && lora.Adapters.ContainsKey(o)).Select(o => lora.Adapters[o!].Rank).DefaultIfEmpty(1).Max());
        var device = lora.Device;
        var a = zeros([n, inF, rank], ScalarType.Float32, device);
        var b = zeros([n, rank, outF], ScalarType.Float32, device);
        var scale = new double[n];
        Tensor? rowScale = null;
        Tensor? w0 = null;
        for (int i = 1; i < n; i++)
        {
            if (order[i] is not { } name || !lora.Adapters.TryGetValue(name, out var adapter)) continue;
            long r = adapter.Rank;
            a[i].narrow(1, 0, r).copy_(adapter.A.detach().t());
            b[i].narrow(0, 0, r).copy_(adapter.B.detach().t());
            scale[i] = adapter.Scaling;
            if (adapter.Magnitude is not null)
            {
                rowScale ??= ones([n, outF], ScalarType.Float32, device);
                w0 ??= lora.Frozen.DequantizedWeight(ScalarType.Float32);
                var norm = linalg.vector_norm(w0 + adapter.DeltaWeight(), 2, [1L]);
                rowScale[i].copy_(adapter.Magnitude.detach() / norm);
            }
        }
        var stacked = new StackedLora(a.MoveToOuterDisposeScope(), b.MoveToOuterDisposeScope(),
            tensor(scale.Select(s => (float)s).ToArray(), device: device).MoveToOuterDisposeScope(),
            rowScale?.MoveToOuterDisposeScope(), selection);
        return stacked;
    }

    /// <summary>Puts <paramref name="adapter"/> (null: none, zeros) at stack index <paramref name="index"/> in place, so
    /// that one adapter coming onto the device costs a copy of its own weights, not a rebuild of the stack. Returns false
    /// (and changes nothing) where it does not fit: a rank above the padded rank, or the first DoRA adapter of the stack.</summary>
    public bool TryWrite(LoraLinear lora, int index, LoraAdapter? adapter)
    {
        if (index < 1 || index >= Count) throw new ArgumentOutOfRangeException(nameof(index), $"stack index {index} is not in 1..{Count - 1}");
        if (adapter is not null && (adapter.Rank > PaddedRank || (adapter.Magnitude is not null && _rowScale is null))) return false;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        _a[index].zero_();
        _b[index].zero_();
        _scale[index].fill_(adapter?.Scaling ?? 0.0);
        _rowScale?[index].fill_(1.0);
        if (adapter is null) return true;
        long r = adapter.Rank;
        _a[index].narrow(1, 0, r).copy_(adapter.A.detach().t());
        _b[index].narrow(0, 0, r).copy_(adapter.B.detach().t());
        if (adapter.Magnitude is not null)
        {
            var norm = linalg.vector_norm(lora.Frozen.DequantizedWeight(ScalarType.Float32) + adapter.DeltaWeight(), 2, [1L]);
            _rowScale![index].copy_(adapter.Magnitude.detach() / norm);
        }
        return true;
    }

    /// <summary>The projection's output for input x [B, T, in] given its base output [B, T, out], each row with the
    /// adapter <see cref="Selection"/> names; cast back to the base output's dtype.</summary>
    public Tensor Apply(Tensor x, Tensor baseOutput, Tensor rows)
    {
        if (Selection.BaseOnly) return baseOutput;
        using var scope = NewDisposeScope();
        long batch = x.shape[0];
        var x32 = x.to(ScalarType.Float32).reshape(batch, -1, x.shape[^1]);                  // [B, T, in]
        var delta = x32.bmm(_a.index_select(0, rows)).bmm(_b.index_select(0, rows));          // [B, T, out]
        delta = delta * _scale.index_select(0, rows).view(batch, 1, 1);
        var y = baseOutput.reshape(delta.shape) + delta;
        if (_rowScale is not null) y = y * _rowScale.index_select(0, rows).unsqueeze(1);
        return y.reshape(baseOutput.shape).to(baseOutput.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The low-rank term of <see cref="Apply"/> for a fused quantized gemv: u = s[i]·x·A[i] and B·u per row, both
    /// in the kernel, over the stacked tensors as they are. Null for stacks with DoRA adapters (their per-row output scale
    /// is not part of the kernel) or off the CPU.</summary>
    internal LowRankTerm? GemvTerm(Tensor x, Tensor rows)
    {
        if (_rowScale is not null || _b.device_type != DeviceType.CPU) return null;
        long batch = x.shape[0], inF = _a.shape[1], outF = _b.shape[2], rank = PaddedRank;
        long perRow = x.numel() / (batch * inF);
        long[] index = rows.data<long>().ToArray();
        float[] scale = _scale.data<float>().ToArray();
        int count = (int)(batch * perRow);
        var aOffsets = new long[count];
        var bOffsets = new long[count];
        var scales = new float[count];
        for (int r = 0; r < count; r++)
        {
            long i = index[r / perRow];
            aOffsets[r] = i == 0 ? -1 : i * inF * rank; // index 0 is the base: no term
            bOffsets[r] = i == 0 ? -1 : i * rank * outF;
            scales[r] = scale[i];
        }
        return new LowRankTerm((int)rank, _a, AStrideIn: rank, AStrideRank: 1, aOffsets, _b, BStrideOut: 1, BStrideRank: outF, bOffsets, scales);
    }

    public void Dispose()
    {
        _a.Dispose(); _b.Dispose(); _scale.Dispose(); _rowScale?.Dispose();
    }
}
