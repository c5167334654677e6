namespace FinQLoRA.Models.Families;

/// <summary>Where a block's RMSNorm sits. Families name the same place differently: Llama's
/// <c>post_attention_layernorm</c> normalises the MLP's input, Gemma's normalises the attention's output.</summary>
public enum NormRole
{
    /// <summary>Before attention (every family's <c>input_layernorm</c>).</summary>
    AttentionInput,
    /// <summary>On attention's output before the residual add (Gemma's sandwich norms).</summary>
    AttentionOutput,
    /// <summary>Before the MLP.</summary>
    MlpInput,
    /// <summary>On the MLP's output before the residual add (Gemma).</summary>
    MlpOutput,
    /// <summary>Per head on the queries before RoPE (Qwen3, Gemma 3), over head_dim.</summary>
    Query,
    /// <summary>Per head on the keys before RoPE.</summary>
    Key,
}

/// <summary>One norm of a family's block: its role, its module inside the block as Hugging Face names it and its
/// llama.cpp name after <c>blk.N.</c>.</summary>
public sealed record BlockNorm(NormRole Role, string HfModule, string GgufName)
{
    public bool PerHead => Role is NormRole.Query or NormRole.Key;
}
