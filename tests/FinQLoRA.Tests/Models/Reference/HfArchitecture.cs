using System.Text.Json.Nodes;

namespace FinQLoRA.Tests.Models.Reference;

/// <summary>
/// What transformers' modeling code of one family does, read from a config.json with that family's config-class
/// defaults — written out per family from configuration_*.py / modeling_*.py, and deliberately not from FinQLoRA's
/// <c>ModelConfig</c> or family tables: this is the independent side of <see cref="HfReferenceForward"/>'s check.
/// Only the families FinQLoRA claims are here; each function says which class (and which defaults) it follows.
/// </summary>
public sealed record HfArchitecture
{
    public required string ModelType { get; init; }
    public required int Hidden { get; init; }
    public required int Layers { get; init; }
    public required int Heads { get; init; }
    public required int KvHeads { get; init; }
    public required int HeadDim { get; init; }
    public required double Eps { get; init; }
    public required double RopeTheta { get; init; }
    public required int MaxPositions { get; init; }
    /// <summary>The top-level <c>original_max_position_embeddings</c> (Phi-3 keeps it outside rope_scaling), or null.</summary>
    public int? OriginalMaxPositions { get; init; }
    public JsonObject? RopeScaling { get; init; }
    public double PartialRotaryFactor { get; init; } = 1.0;
    public required bool TiedHead { get; init; }
    /// <summary>Biases on q_proj, k_proj, v_proj.</summary>
    public bool QkvBias { get; init; }
    public bool OBias { get; init; }
    public bool MlpBias { get; init; }
    /// <summary>q/k in one <c>qkv_proj</c>, gate/up in one <c>gate_up_proj</c> (Phi-3).</summary>
    public bool Fused { get; init; }
    /// <summary><c>self_attn.q_norm</c>/<c>k_norm</c> over head_dim before RoPE.</summary>
    public bool QkNorm { get; init; }
    /// <summary>GemmaRMSNorm: fp32 throughout and a scale of (1 + w).</summary>
    public bool GemmaNorm { get; init; }
    /// <summary>Norms before and after attention and the MLP (Gemma's four block norms).</summary>
    public bool SandwichNorms { get; init; }
    /// <summary>Embeddings times √hidden, the normaliser being a tensor of the hidden dtype.</summary>
    public bool ScaleEmbeddings { get; init; }
    /// <summary>ACT2FN name: <c>silu</c> or <c>gelu_pytorch_tanh</c>.</summary>
    public required string Activation { get; init; }
    /// <summary>The factor q·k is multiplied by.</summary>
    public required double Scaling { get; init; }
    public double? AttentionSoftcap { get; init; }
    public double? FinalSoftcap { get; init; }
    public int? SlidingWindow { get; init; }
    /// <summary>Per layer: true for "sliding_attention".</summary>
    public required bool[] SlidingLayers { get; init; }
    /// <summary>Gemma 3's <c>rope_local_base_freq</c>: the sliding layers' default RoPE (no scaling); null elsewhere.</summary>
    public double? LocalRopeTheta { get; init; }

    public static HfArchitecture Read(JsonObject o) => (string?)o["model_type"] switch
    {
        "llama" => Llama(o),
        "mistral" => Mistral(o),
        "qwen2" => Qwen2(o),
        "qwen3" => Qwen3(o),
        "gemma2" => Gemma2(o),
        "gemma3_text" => Gemma3Text(o),
        "phi3" => Phi3(o),
        var other => throw new NotSupportedException($"the reference forward has no family '{other}'"),
    };

    // ── LlamaConfig / modeling_llama.py: q,k,v,o bias = attention_bias, MLP bias = mlp_bias, untied by default ──
    private static HfArchitecture Llama(JsonObject o) => Common(o, tiedDefault: false, headDimDefault: null) with
    {
        QkvBias = Bool(o, "attention_bias", false),
        OBias = Bool(o, "attention_bias", false),
        MlpBias = Bool(o, "mlp_bias", false),
    };

    // ── MistralConfig / modeling_mistral.py: no biases, sliding_window (default 4096, null = off) on every layer ──
    private static HfArchitecture Mistral(JsonObject o)
    {
        var c = Common(o, tiedDefault: false, headDimDefault: null);
        int? window = o.ContainsKey("sliding_window") ? Int(o, "sliding_window") : 4096;
        return c with { SlidingWindow = window, SlidingLayers = LayerTypes(o, c.Layers, _ => window is not null) };
    }

    // ── Qwen2Config / modeling_qwen2.py: q,k,v with bias, o_proj without; a window only with use_sliding_window,
    //    on the layers from max_window_layers on ──
    private static HfArchitecture Qwen2(JsonObject o)
    {
        var c = Common(o, tiedDefault: false, headDimDefault: null);
        return QwenWindows(o, c) with { QkvBias = true };
    }

    // ── Qwen3Config / modeling_qwen3.py: attention_bias on q,k,v,o; q_norm/k_norm (plain RMSNorm) per head;
    //    head_dim default 128 ──
    private static HfArchitecture Qwen3(JsonObject o)
    {
        var c = Common(o, tiedDefault: false, headDimDefault: 128);
        return QwenWindows(o, c) with
        {
            QkvBias = Bool(o, "attention_bias", false), OBias = Bool(o, "attention_bias", false), QkNorm = true,
        };
    }

    private static HfArchitecture QwenWindows(JsonObject o, HfArchitecture c)
    {
        int? window = Bool(o, "use_sliding_window", false) ? (o.ContainsKey("sliding_window") ? Int(o, "sliding_window") : 4096) : null;
        int first = o["max_window_layers"] is null ? 28 : (int)o["max_window_layers"]!;
        return c with { SlidingWindow = window, SlidingLayers = LayerTypes(o, c.Layers, i => window is not null && i >= first) };
    }

    // ── Gemma2Config / modeling_gemma2.py: head_dim 256, query_pre_attn_scalar 224, soft-caps 50 and 30, window
    //    4096 on the even layers ("sliding_attention" if (i + 1) % 2), tied, attention_bias on q,k,v,o ──
    private static HfArchitecture Gemma2(JsonObject o)
    {
        var c = Gemma(o, headDimDefault: 256, scalarDefault: 224);
        return c with
        {
            AttentionSoftcap = OptionalDouble(o, "attn_logit_softcapping", 50.0),
            FinalSoftcap = OptionalDouble(o, "final_logit_softcapping", 30.0),
            SlidingLayers = LayerTypes(o, c.Layers, i => (i + 1) % 2 != 0),
        };
    }

    // ── Gemma3TextConfig / modeling_gemma3.py: Gemma 2's block with q_norm/k_norm (GemmaRMSNorm, 1 + w), no soft-caps
    //    by default, 5 sliding layers to 1 full (sliding_window_pattern 6), rope_theta 1e6 with rope_scaling on the
    //    full layers and rope_local_base_freq (10000, default RoPE) on the sliding ones ──
    private static HfArchitecture Gemma3Text(JsonObject o)
    {
        var c = Gemma(o, headDimDefault: 256, scalarDefault: 256) with { RopeTheta = Double(o, "rope_theta", 1_000_000.0) };
        int pattern = o["sliding_window_pattern"] is null ? 6 : (int)o["sliding_window_pattern"]!;
        return c with
        {
            QkNorm = true,
            AttentionSoftcap = OptionalDouble(o, "attn_logit_softcapping", null),
            FinalSoftcap = OptionalDouble(o, "final_logit_softcapping", null),
            SlidingLayers = LayerTypes(o, c.Layers, i => (i + 1) % pattern != 0),
            LocalRopeTheta = Double(o, "rope_local_base_freq", 10000.0),
        };
    }

    private static HfArchitecture Gemma(JsonObject o, int headDimDefault, double scalarDefault)
    {
        var c = Common(o, tiedDefault: true, headDimDefault: headDimDefault);
        string act = (string?)o["hidden_activation"] ?? "gelu_pytorch_tanh";
        return c with
        {
            QkvBias = Bool(o, "attention_bias", false), OBias = Bool(o, "attention_bias", false),
            GemmaNorm = true, SandwichNorms = true, ScaleEmbeddings = true, Activation = act,
            Scaling = Math.Pow(Double(o, "query_pre_attn_scalar", scalarDefault), -0.5),
            SlidingWindow = o.ContainsKey("sliding_window") ? Int(o, "sliding_window") : 4096,
        };
    }

    // ── Phi3Config / modeling_phi3.py: qkv_proj and gate_up_proj, none with a bias (Phi3Config has no attention_bias),
    //    head_dim = hidden / heads, partial_rotary_factor, original_max_position_embeddings default 4096, a window on
    //    every layer where sliding_window is set (default none) ──
    private static HfArchitecture Phi3(JsonObject o)
    {
        var c = Common(o, tiedDefault: false, headDimDefault: null);
        int? window = o["sliding_window"] is null ? null : Int(o, "sliding_window");
        return c with
        {
            Fused = true,
            PartialRotaryFactor = Double(o, "partial_rotary_factor", 1.0),
            OriginalMaxPositions = o["original_max_position_embeddings"] is null ? 4096 : Int(o, "original_max_position_embeddings"),
            SlidingWindow = window,
            SlidingLayers = LayerTypes(o, c.Layers, _ => window is not null),
        };
    }

    private static HfArchitecture Common(JsonObject o, bool tiedDefault, int? headDimDefault)
    {
        int hidden = Int(o, "hidden_size")!.Value, heads = Int(o, "num_attention_heads")!.Value;
        int headDim = o["head_dim"] is null ? headDimDefault ?? hidden / heads : Int(o, "head_dim")!.Value;
        int layers = Int(o, "num_hidden_layers")!.Value;
        return new HfArchitecture
        {
            ModelType = (string)o["model_type"]!,
            Hidden = hidden,
            Layers = layers,
            Heads = heads,
            KvHeads = o["num_key_value_heads"] is null ? heads : Int(o, "num_key_value_heads")!.Value,
            HeadDim = headDim,
            Eps = Double(o, "rms_norm_eps", 1e-6),
            RopeTheta = Double(o, "rope_theta", 10000.0),
            MaxPositions = Int(o, "max_position_embeddings")!.Value,
            OriginalMaxPositions = o["original_max_position_embeddings"] is null ? null : Int(o, "original_max_position_embeddings"),
            RopeScaling = o["rope_scaling"] as JsonObject,
            TiedHead = Bool(o, "tie_word_embeddings", tiedDefault),
            Activation = (string?)o["hidden_act"] ?? "silu",
            Scaling = Math.Pow(headDim, -0.5),
            SlidingLayers = new bool[layers],
        };
    }

    /// <summary>transformers' <c>layer_types</c> where the config states it, else the family's default rule.</summary>
    private static bool[] LayerTypes(JsonObject o, int layers, Func<int, bool> sliding) => o["layer_types"] is JsonArray types
        ? types.Select(t => (string?)t == "sliding_attention").ToArray()
        : Enumerable.Range(0, layers).Select(sliding).ToArray();

    private static int? Int(JsonObject o, string key) => o[key] is JsonValue v ? (int)v.GetValue<double>() : null;
    private static double Double(JsonObject o, string key, double fallback) => o[key] is JsonValue v ? v.GetValue<double>() : fallback;
    private static double? OptionalDouble(JsonObject o, string key, double? fallback) =>
        o.ContainsKey(key) ? (o[key] is JsonValue v ? v.GetValue<double>() : null) : fallback;
    private static bool Bool(JsonObject o, string key, bool fallback) => o[key] is JsonValue v ? v.GetValue<bool>() : fallback;
}
