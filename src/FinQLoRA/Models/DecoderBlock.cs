using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// One pre-norm decoder block:
/// <code>
///   h   = x + o_proj(Attn(RMSNorm₁(x)))
///   out = h + MLP(RMSNorm₂(h))
/// </code>
/// </summary>
public sealed class DecoderBlock : nn.Module
{
    private readonly RmsNorm input_layernorm;
    private readonly SelfAttention self_attn;
    private readonly RmsNorm post_attention_layernorm;
    private readonly FeedForward mlp;

    public DecoderBlock(RmsNorm inputNorm, SelfAttention attention, RmsNorm postAttentionNorm, FeedForward mlp)
        : base(nameof(DecoderBlock))
    {
        input_layernorm = inputNorm;
        self_attn = attention;
        post_attention_layernorm = postAttentionNorm;
        this.mlp = mlp;
        RegisterComponents();
    }

    public SelfAttention Attention => self_attn;
    public FeedForward Mlp => mlp;
    public RmsNorm InputNorm => input_layernorm;
    public RmsNorm PostAttentionNorm => post_attention_layernorm;

    /// <summary>The section holding a projection: attention for q, k, v, o; the MLP for gate, up, down.</summary>
    public ProjectionSet Section(ProjectionKind kind) => ModelLayout.IsAttention(kind) ? self_attn : mlp;

    /// <summary>The module now in a projection's place (the base linear, or the adapter wrapping it).</summary>
    public nn.Module<Tensor, Tensor> this[ProjectionKind kind] => Section(kind)[kind];

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, IKvCache? cache)
    {
        using var scope = NewDisposeScope();
        var h = x + self_attn.Forward(input_layernorm.forward(x), cos, sin, mask, cache);
        var output = h + mlp.Forward(post_attention_layernorm.forward(h));
        return output.MoveToOuterDisposeScope();
    }
}
