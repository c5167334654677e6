using FinQLoRA.Models.Families;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// One pre-norm decoder block:
/// <code>
///   h   = x + [norm_attn_out](o_proj(Attn(norm_attn_in(x))))
///   out = h + [norm_mlp_out](MLP(norm_mlp_in(h)))
/// </code>
/// the bracketed output norms only where the family has them (Gemma's sandwich).
/// </summary>
public sealed class DecoderBlock : nn.Module
{
    private readonly RmsNorm attention_norm;
    private readonly SelfAttention self_attn;
    private readonly RmsNorm? attention_output_norm;
    private readonly RmsNorm mlp_norm;
    private readonly FeedForward mlp;
    private readonly RmsNorm? mlp_output_norm;

    public DecoderBlock(RmsNorm inputNorm, SelfAttention attention, RmsNorm mlpNorm, FeedForward mlp,
        RmsNorm? attentionOutputNorm = null, RmsNorm? mlpOutputNorm = null)
        : base(nameof(DecoderBlock))
    {
        attention_norm = inputNorm;
        self_attn = attention;
        mlp_norm = mlpNorm;
        this.mlp = mlp;
        attention_output_norm = attentionOutputNorm;
        mlp_output_norm = mlpOutputNorm;
        RegisterComponents();
    }

    public SelfAttention Attention => self_attn;
    public FeedForward Mlp => mlp;
    public RmsNorm InputNorm => attention_norm;
    /// <summary>The norm before the MLP (Llama's <c>post_attention_layernorm</c>, Gemma's <c>pre_feedforward_layernorm</c>).</summary>
    public RmsNorm MlpInputNorm => mlp_norm;

    /// <summary>The norm in <paramref name="role"/>'s place, or null where this block has none.</summary>
    public RmsNorm? Norm(NormRole role) => role switch
    {
        NormRole.AttentionInput => attention_norm,
        NormRole.AttentionOutput => attention_output_norm,
        NormRole.MlpInput => mlp_norm,
        NormRole.MlpOutput => mlp_output_norm,
        NormRole.Query => self_attn.QueryNorm,
        _ => self_attn.KeyNorm,
    };

    /// <summary>The section holding a projection: attention for q, k, v, o (and qkv); the MLP for gate, up, down (and gate_up).</summary>
    public ProjectionSet Section(ProjectionKind kind) => ModelLayout.IsAttention(kind) ? self_attn : mlp;

    /// <summary>The module now in a projection's place (the base linear, or the adapter wrapping it).</summary>
    public nn.Module<Tensor, Tensor> this[ProjectionKind kind] => Section(kind)[kind];

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, IKvCache? cache)
    {
        using var scope = NewDisposeScope();
        var attended = self_attn.Forward(attention_norm.forward(x), cos, sin, mask, cache);
        var h = x + (attention_output_norm?.forward(attended) ?? attended);
        var fed = mlp.Forward(mlp_norm.forward(h));
        var output = h + (mlp_output_norm?.forward(fed) ?? fed);
        return output.MoveToOuterDisposeScope();
    }
}
