namespace FinQLoRA.Models.Families;

/// <summary>The block norms several families share (kept apart from <see cref="ModelFamilies"/> so that its family list
/// can be initialised from the family tables that use these).</summary>
internal static class CommonNorms
{
    public static readonly BlockNorm AttentionInput = new(NormRole.AttentionInput, "input_layernorm", "attn_norm");
    public static readonly BlockNorm QueryNorm = new(NormRole.Query, "self_attn.q_norm", "attn_q_norm");
    public static readonly BlockNorm KeyNorm = new(NormRole.Key, "self_attn.k_norm", "attn_k_norm");
    /// <summary>Llama's <c>post_attention_layernorm</c>: the MLP's input norm in the pre-norm families.</summary>
    public static readonly BlockNorm PreNormMlp = new(NormRole.MlpInput, "post_attention_layernorm", "ffn_norm");
}
