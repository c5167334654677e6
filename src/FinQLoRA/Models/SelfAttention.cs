using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// Grouped-query causal self-attention. q: [B, H, T, d], k/v: [B, Hkv, T, d]; each KV head serves
/// H/Hkv query heads. Scores are scaled by 1/√d (scaled_dot_product_attention's default, which is Llama's).
/// </summary>
public sealed class SelfAttention : ProjectionSet
{
    private readonly ModelConfig _config;
    private readonly int _layer;

    public SelfAttention(ModelConfig config, int layer, nn.Module<Tensor, Tensor> q, nn.Module<Tensor, Tensor> k,
        nn.Module<Tensor, Tensor> v, nn.Module<Tensor, Tensor> o) : base(nameof(SelfAttention))
    {
        _config = config;
        _layer = layer;
        AddProjection(ProjectionKind.Q, q);
        AddProjection(ProjectionKind.K, k);
        AddProjection(ProjectionKind.V, v);
        AddProjection(ProjectionKind.O, o);
    }

    /// <param name="x">[B, T, hidden]</param>
    /// <param name="mask">additive [B, 1, T, S] (0 where visible, a large negative where not), S = past + T</param>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, IKvCache? cache)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        int h = _config.NumHeads, hkv = _config.NumKvHeads, d = _config.HeadDim;

        var qkv = FusedProjections.Forward(x, this[ProjectionKind.Q], this[ProjectionKind.K], this[ProjectionKind.V]);
        var q = qkv[0].view(b, t, h, d).transpose(1, 2);      // [B, H, T, d]
        var k = qkv[1].view(b, t, hkv, d).transpose(1, 2);    // [B, Hkv, T, d]
        var v = qkv[2].view(b, t, hkv, d).transpose(1, 2);
        q = RotaryEmbedding.Apply(q, cos, sin);
        k = RotaryEmbedding.Apply(k, cos, sin);
        if (cache != null) (k, v) = cache.Append(_layer, k, v);                  // [B, Hkv, S, d]

        var m = mask.dtype == q.dtype ? mask : mask.to(q.dtype);
        Tensor merged;
        if (h != hkv && t == 1)
        {
            // One query per row (a decode step): the G = H/Hkv query heads of a KV head are attention rows against the
            // same keys, so they are grouped as [B, Hkv, G, d] and the keys are read once, not repeated G times per
            // layer per token; the mask row [B, 1, 1, S] is the same for all of them.
            var grouped = q.reshape(b, hkv, h / hkv, d);
            merged = nn.functional.scaled_dot_product_attention(grouped, k, v, attn_mask: m).reshape(b, 1, h * d);
        }
        else
        {
            if (h != hkv)
            {
                // TorchSharp's SDPA has no enable_gqa: repeat each KV head for its group of query heads.
                k = k.repeat_interleave(h / hkv, dim: 1);
                v = v.repeat_interleave(h / hkv, dim: 1);
            }
            var dtype = CpuMatmulPrecision.TrainingAttentionDType(q);
            var attn = dtype == q.dtype
                ? nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: m)
                : nn.functional.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), attn_mask: m.to(dtype)).to(q.dtype);
            merged = attn.transpose(1, 2).reshape(b, t, h * d);
        }
        return this[ProjectionKind.O].forward(merged).MoveToOuterDisposeScope();
    }
}
