using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// Grouped-query causal self-attention. q: [B, H, T, d], k/v: [B, Hkv, T, d]; each KV head serves H/Hkv query heads.
/// What families change is read from the config: biases on the projections, q and k fused with v into one projection
/// (Phi-3), per-head q/k RMSNorm before RoPE (Qwen3, Gemma 3), RoPE on part of each head (Phi), the query scale
/// (Gemma's query_pre_attn_scalar; else 1/√d, scaled_dot_product_attention's default) and a soft-cap on the scores
/// (Gemma 2). The layer's mask (causal, or causal and windowed) comes from the model.
/// </summary>
public sealed class SelfAttention : ProjectionSet
{
    private readonly ModelConfig _config;
    private readonly int _layer;
    private readonly RmsNorm? q_norm;
    private readonly RmsNorm? k_norm;

    /// <param name="projections">the family's attention projections (q, k, v, o; or qkv, o) with their biases, if any</param>
    public SelfAttention(ModelConfig config, int layer, IEnumerable<(ProjectionKind Kind, nn.Module<Tensor, Tensor> Module, Tensor? Bias)> projections,
        RmsNorm? queryNorm = null, RmsNorm? keyNorm = null) : base(nameof(SelfAttention))
    {
        _config = config;
        _layer = layer;
        foreach (var (kind, module, bias) in projections) AddProjection(kind, module, bias);
        q_norm = queryNorm;
        k_norm = keyNorm;
        if (q_norm != null) register_module("q_norm", q_norm);
        if (k_norm != null) register_module("k_norm", k_norm);
    }

    public RmsNorm? QueryNorm => q_norm;
    public RmsNorm? KeyNorm => k_norm;

    /// <param name="x">[B, T, hidden]</param>
    /// <param name="mask">additive [B, 1, T, S] (0 where visible, a large negative where not), S = past + T; training
    /// passes the causal flag instead where it is the plain causal mask (<see cref="AttentionMask.IsPlainCausal"/>)</param>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, IKvCache? cache)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        int h = _config.NumHeads, hkv = _config.NumKvHeads, d = _config.HeadDim;

        var (q, k, v) = QueryKeyValue(x);
        bool repeated = HeadsInOneNode(q, k, v, cos, sin, cache);
        if (repeated)
        {
            // training: each of q, k, v from its rows to attention's heads in one node (RoPE and GQA's repeat included)
            int g = h / hkv;
            q = AttentionHeadsFunction.Apply(q, cos, sin, new(d, 1, Rotate: true));                  // [B, H, T, d]
            k = AttentionHeadsFunction.Apply(k, cos, sin, new(d, g, Rotate: true));                  // [B, H, T, d]
            v = g == 1 ? Heads(v, b, t, hkv, d) : AttentionHeadsFunction.Apply(v, cos, sin, new(d, g, Rotate: false));
        }
        else
        {
            q = q.reshape(b, t, h, d);
            k = k.reshape(b, t, hkv, d);
            if (q_norm != null) q = q_norm.forward(q);
            if (k_norm != null) k = k_norm.forward(k);
            q = RotaryEmbedding.Apply(q.transpose(1, 2), cos, sin);              // [B, H, T, d]
            k = RotaryEmbedding.Apply(k.transpose(1, 2), cos, sin);              // [B, Hkv, T, d]
            v = v.reshape(b, t, hkv, d).transpose(1, 2);
        }
        if (cache != null) (k, v) = cache.Append(_layer, k, v);                  // [B, Hkv, S, d]

        var m = AttentionMask.To(mask, q.dtype);
        Tensor merged;
        if (_config.AttentionSoftcap is not null || _config.QueryPreAttnScalar is double s && s != d)
            merged = Explicit(q, k, v, m).transpose(1, 2).reshape(b, t, h * d);
        else if (h != hkv && cache != null && m.shape[1] == 1 && t * (h / hkv) <= 2L * h * d)
        {
            // Inference against a cache: the G = H/Hkv query heads of a KV head are attention rows against the same
            // keys, so they are stacked as [B, Hkv, G·T, d] (the mask's T rows repeated for each of the G heads) and the
            // cached keys are read in place. Repeating them G times instead copies the whole cached span every layer:
            // with a long cached prefix and few new tokens (a prefix-cache hit, a decode step) that copy, not the
            // attention, was the cost (10x on a 670-token span). The mask's copy is G·T·S values against the keys' and
            // values' 2·H·S·d, so a long fresh prefill (G·T > 2·H·d) repeats the keys instead.
            int g = h / hkv;
            var grouped = q.reshape(b, hkv, g * t, d);
            var rows = t == 1 ? m : m.repeat(1, 1, g, 1);
            var attn = nn.functional.scaled_dot_product_attention(grouped, k, v, attn_mask: rows);
            merged = attn.reshape(b, h, t, d).transpose(1, 2).reshape(b, t, h * d);
        }
        else
        {
            if (!repeated) (k, v) = RepeatKv(k, v);
            var dtype = CpuMatmulPrecision.TrainingAttentionDType(q);
            // Training on the plain causal mask: the causal flag, so the flash kernel skips the blocks above the diagonal
            // (about half of attention's work at 256 tokens) and reads no mask. Inference keeps the mask it always had.
            bool causal = cache == null && training && TrainingFusions.Enabled && AttentionMask.IsPlainCausal(m);
            var attn = dtype == q.dtype
                ? Attend(q, k, v, m, causal)
                : Attend(q.to(dtype), k.to(dtype), v.to(dtype), m.to(dtype), causal).to(q.dtype);
            merged = Merged(attn, b, t, h * d);
        }
        return Project(ProjectionKind.O, merged).MoveToOuterDisposeScope();
    }

    /// <summary>q, k, v as [B, T, width] each: from Phi-3's one qkv projection cut at its row blocks, or from the three
    /// projections multiplied together (<see cref="FusedProjections"/>), biases added.</summary>
    private (Tensor Q, Tensor K, Tensor V) QueryKeyValue(Tensor x)
    {
        int qDim = _config.QDim, kvDim = _config.KvDim;
        if (Has(ProjectionKind.Qkv))
        {
            var all = Project(ProjectionKind.Qkv, x);
            return (all.narrow(-1, 0, qDim), all.narrow(-1, qDim, kvDim), all.narrow(-1, qDim + kvDim, kvDim));
        }
        var qkv = FusedProjections.Forward(x, this[ProjectionKind.Q], this[ProjectionKind.K], this[ProjectionKind.V]);
        return (WithBias(ProjectionKind.Q, qkv[0]), WithBias(ProjectionKind.K, qkv[1]), WithBias(ProjectionKind.V, qkv[2]));
    }

    /// <summary>Whether q, k and v go from rows to heads in <see cref="AttentionHeadsFunction"/>: training with gradients
    /// on the fused step, no cache, no q/k norms, RoPE over whole heads, SDPA's default scale without a soft-cap (the
    /// explicit path repeats k and v itself), bf16 rows on the CPU.</summary>
    private bool HeadsInOneNode(Tensor q, Tensor k, Tensor v, Tensor cos, Tensor sin, IKvCache? cache)
    {
        int d = _config.HeadDim;
        return cache == null && training && is_grad_enabled() && TrainingFusions.Enabled
            && q_norm == null && k_norm == null && cos.shape[^1] == d
            && _config.AttentionSoftcap is null && (_config.QueryPreAttnScalar is not double s || s == d)
            && _config.NumHeads % _config.NumKvHeads == 0
            && AttentionHeadsKernel.Applies(q, cos, sin, d) && AttentionHeadsKernel.Applies(k, cos, sin, d) && AttentionHeadsKernel.Applies(v, cos, sin, d);
    }

    /// <summary>Attention's output heads [B, H, T, d] as rows [B, T, H·d]: a view where the flash kernel wrote them token
    /// by token (one op; reshape is two), else a copy.</summary>
    private static Tensor Merged(Tensor attn, long b, long t, long width)
    {
        var tokens = attn.transpose(1, 2);
        return tokens.is_contiguous() ? tokens.view(b, t, width) : tokens.reshape(b, t, width);
    }

    /// <summary>[B, T, n·d] rows seen as [B, n, T, d] heads (a view where the rows are contiguous).</summary>
    private static Tensor Heads(Tensor rows, long b, long t, int n, int d) =>
        (rows.is_contiguous() ? rows.view(b, t, n, d) : rows.reshape(b, t, n, d)).transpose(1, 2);

    private static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor mask, bool causal) => causal
        ? nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true)
        : nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: mask);

    /// <summary>TorchSharp's SDPA has no enable_gqa: each KV head is repeated for its group of query heads.</summary>
    private (Tensor K, Tensor V) RepeatKv(Tensor k, Tensor v)
    {
        int groups = _config.NumHeads / _config.NumKvHeads;
        return groups == 1 ? (k, v) : (k.repeat_interleave(groups, dim: 1), v.repeat_interleave(groups, dim: 1));
    }

    /// <summary>Attention written out, as transformers' eager path for Gemma: scores scaled by the config's query
    /// scale, soft-capped (<c>cap · tanh(s / cap)</c>) where the config says, masked, softmax in fp32.</summary>
    private Tensor Explicit(Tensor q, Tensor k, Tensor v, Tensor mask)
    {
        using var scope = NewDisposeScope();
        (k, v) = RepeatKv(k, v);
        var scores = matmul(q, k.transpose(-1, -2)) * _config.QueryScale;
        if (_config.AttentionSoftcap is double cap) scores = (scores / cap).tanh() * cap;
        scores = scores + mask;
        var probs = scores.to(ScalarType.Float32).softmax(-1).to(q.dtype);
        return matmul(probs, v).MoveToOuterDisposeScope();
    }
}
