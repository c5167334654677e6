using System.Text.RegularExpressions;

namespace FinQLoRA.Models.Gguf;

/// <summary>The one place where llama.cpp's Llama tensor names meet Hugging Face's (llama.cpp
/// <c>tensor_mapping.py</c>): <c>blk.N.attn_q.weight</c> ↔ <c>model.layers.N.self_attn.q_proj.weight</c>, and so on.</summary>
public static partial class GgufTensorNames
{
    private static readonly (string Gguf, string Hf)[] Global =
    [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
    ];

    /// <summary>Per-block tensors: GGUF suffix after <c>blk.N.</c> and HF suffix after <c>model.layers.N.</c>.</summary>
    public static readonly IReadOnlyList<(string Gguf, string Hf)> Block =
    [
        ("attn_norm", "input_layernorm"),
        ("ffn_norm", "post_attention_layernorm"),
        ("attn_q", "self_attn.q_proj"),
        ("attn_k", "self_attn.k_proj"),
        ("attn_v", "self_attn.v_proj"),
        ("attn_output", "self_attn.o_proj"),
        ("ffn_gate", "mlp.gate_proj"),
        ("ffn_up", "mlp.up_proj"),
        ("ffn_down", "mlp.down_proj"),
    ];

    [GeneratedRegex(@"^blk\.(\d+)\.([a-z_]+)\.weight$")]
    private static partial Regex GgufBlock();

    [GeneratedRegex(@"^model\.layers\.(\d+)\.([a-z_.]+)\.weight$")]
    private static partial Regex HfBlock();

    /// <summary>The HF name of a GGUF Llama tensor, or null when the tensor is not one of the Llama weights.</summary>
    public static string? ToHf(string gguf)
    {
        foreach (var (g, h) in Global) if (g == gguf) return h;
        var m = GgufBlock().Match(gguf);
        if (!m.Success) return null;
        foreach (var (g, h) in Block)
            if (g == m.Groups[2].Value) return $"model.layers.{m.Groups[1].Value}.{h}.weight";
        return null;
    }

    /// <summary>The GGUF name of an HF Llama tensor, or null when it is not one of the Llama weights.</summary>
    public static string? ToGguf(string hf)
    {
        foreach (var (g, h) in Global) if (h == hf) return g;
        var m = HfBlock().Match(hf);
        if (!m.Success) return null;
        foreach (var (g, h) in Block)
            if (h == m.Groups[2].Value) return $"blk.{m.Groups[1].Value}.{g}.weight";
        return null;
    }

    /// <summary>Which RoPE head count permutes a tensor's rows (q: n_heads, k: n_kv_heads), or null for no permutation.</summary>
    public static int? RopeHeads(string hfName, LlamaConfig config) =>
        hfName.EndsWith(".self_attn.q_proj.weight", StringComparison.Ordinal) ? config.NumHeads
        : hfName.EndsWith(".self_attn.k_proj.weight", StringComparison.Ordinal) ? config.NumKvHeads
        : null;
}
