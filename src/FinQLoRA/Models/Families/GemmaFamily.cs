namespace FinQLoRA.Models.Families;

/// <summary>
/// Gemma 2: GeGLU, RMSNorm scaling by <c>1 + w</c>, embeddings times √hidden, norms before and after attention and the
/// MLP, attention and final logit soft-caps, queries scaled by <c>query_pre_attn_scalar</c>, a sliding window on every
/// other layer (the even ones), a tied head. Gemma 3 (text): the same block with q/k norms instead of the attention
/// soft-cap, five windowed layers to one global, and a local RoPE base (<c>rope_local_base_freq</c>) on the windowed
/// layers while <c>rope_scaling</c> applies to the global ones. llama.cpp stores the norm weights as 1 + w.
/// </summary>
public static class GemmaFamily
{
    private static readonly BlockNorm AttentionOutput = new(NormRole.AttentionOutput, "post_attention_layernorm", "post_attention_norm");
    private static readonly BlockNorm MlpInput = new(NormRole.MlpInput, "pre_feedforward_layernorm", "ffn_norm");
    private static readonly BlockNorm MlpOutput = new(NormRole.MlpOutput, "post_feedforward_layernorm", "post_ffw_norm");

    public static readonly ModelFamily Gemma2 = new()
    {
        ModelType = "gemma2",
        HfArchitecture = "Gemma2ForCausalLM",
        GgufArchitecture = "gemma2",
        GgufNormOffset = 1f,
        Norms = [CommonNorms.AttentionInput, AttentionOutput, MlpInput, MlpOutput],
        ReadArchitecture = (json, c) =>
        {
            int? window = json.OptionalInt("sliding_window", 4096);
            var layers = ModelFamilies.LayerTypes(json, c.NumLayers) ?? Enumerable.Range(0, c.NumLayers).Select(i => i % 2 == 0).ToArray();
            return Common(json, c, defaultQueryScalar: 224) with
            {
                AttentionSoftcap = json.OptionalPositive("attn_logit_softcapping", 50.0),
                FinalSoftcap = json.OptionalPositive("final_logit_softcapping", 30.0),
                SlidingWindow = window,
                SlidingLayers = window is null ? [] : layers,
            };
        },
        WriteArchitecture = (c, o) =>
        {
            WriteCommon(c, o);
            o["attn_logit_softcapping"] = c.AttentionSoftcap;
            o["final_logit_softcapping"] = c.FinalSoftcap;
        },
    };

    public static readonly ModelFamily Gemma3 = Gemma2 with
    {
        ModelType = "gemma3_text",
        HfArchitecture = "Gemma3ForCausalLM",
        GgufArchitecture = "gemma3",
        Norms = [CommonNorms.AttentionInput, CommonNorms.QueryNorm, CommonNorms.KeyNorm, AttentionOutput, MlpInput, MlpOutput],
        ReadArchitecture = (json, c) =>
        {
            int? window = json.OptionalInt("sliding_window", 4096);
            int pattern = json.Int("sliding_window_pattern", 6);
            var layers = ModelFamilies.LayerTypes(json, c.NumLayers) ?? Enumerable.Range(0, c.NumLayers).Select(i => (i + 1) % pattern != 0).ToArray();
            return Common(json, c, defaultQueryScalar: 256) with
            {
                QkNorm = true,
                AttentionSoftcap = json.OptionalPositive("attn_logit_softcapping"),
                FinalSoftcap = json.OptionalPositive("final_logit_softcapping"),
                SlidingWindow = window,
                SlidingLayers = window is null ? [] : layers,
                LocalRopeTheta = json.Positive("rope_local_base_freq", 10000.0),
            };
        },
        WriteArchitecture = (c, o) =>
        {
            WriteCommon(c, o);
            o["attn_logit_softcapping"] = c.AttentionSoftcap;
            o["final_logit_softcapping"] = c.FinalSoftcap;
            o["rope_local_base_freq"] = c.LocalRopeTheta;
        },
    };

    /// <summary>What Gemma 2 and 3 share; where a key is absent, transformers' config defaults (head_dim 256, the query
    /// scalar of the family's config class).</summary>
    private static ModelConfig Common(ConfigJson json, ModelConfig c, double defaultQueryScalar)
    {
        string act = json.String("hidden_activation") ?? json.String("hidden_act") ?? "gelu_pytorch_tanh";
        if (act is not ("gelu_pytorch_tanh" or "gelu_tanh"))
            throw new UserInputException($"{json.Source}: hidden_activation '{act}' is not supported for Gemma (gelu_pytorch_tanh)");
        return c with
        {
            NormOffset = 1.0, Activation = Activation.GeluTanh, SandwichNorms = true, ScaleEmbeddings = true,
            TieWordEmbeddings = json.Flag("tie_word_embeddings", fallback: true),
            HeadDim = json.HeadDim(c, 256),
            QueryPreAttnScalar = json.OptionalPositive("query_pre_attn_scalar", defaultQueryScalar),
            QkvBias = json.Flag("attention_bias"), OutputBias = json.Flag("attention_bias"),
        };
    }

    private static void WriteCommon(ModelConfig c, System.Text.Json.Nodes.JsonObject o)
    {
        o["hidden_activation"] = "gelu_pytorch_tanh";
        o["query_pre_attn_scalar"] = c.QueryPreAttnScalar;
        o["attention_bias"] = c.QkvBias;
        ModelFamilies.WriteWindows(c, o);
    }
}
