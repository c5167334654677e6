namespace FinQLoRA.Models.Families;

/// <summary>Qwen2/2.5 (and DeepSeek-R1-Distill-Qwen): biases on q, k and v. Qwen3: per-head q/k RMSNorm before RoPE,
/// <c>attention_bias</c> as Llama's. Both keep <c>sliding_window</c> keys that are off unless <c>use_sliding_window</c>
/// (then layers from <c>max_window_layers</c> on, or as <c>layer_types</c> says); llama.cpp rotates NeoX-style, so
/// nothing is permuted.</summary>
public static class QwenFamily
{
    public static readonly ModelFamily Qwen2 = new()
    {
        ModelType = "qwen2",
        HfArchitecture = "Qwen2ForCausalLM",
        GgufArchitecture = "qwen2",
        Norms = [CommonNorms.AttentionInput, CommonNorms.PreNormMlp],
        ReadArchitecture = (json, c) => Windows(json, c) with { QkvBias = true },
        WriteArchitecture = (c, o) => WriteWindows(c, o),
    };

    public static readonly ModelFamily Qwen3 = Qwen2 with
    {
        ModelType = "qwen3",
        HfArchitecture = "Qwen3ForCausalLM",
        GgufArchitecture = "qwen3",
        Norms = [CommonNorms.AttentionInput, CommonNorms.QueryNorm, CommonNorms.KeyNorm, CommonNorms.PreNormMlp],
        ReadArchitecture = (json, c) => Windows(json, c) with
        {
            HeadDim = json.HeadDim(c, 128), // Qwen3Config's default; it does not derive head_dim from the hidden size
            QkNorm = true, QkvBias = json.Flag("attention_bias"), OutputBias = json.Flag("attention_bias"),
        },
        WriteArchitecture = (c, o) =>
        {
            o["attention_bias"] = c.QkvBias;
            WriteWindows(c, o);
        },
    };

    private static ModelConfig Windows(ConfigJson json, ModelConfig c)
    {
        int? window = json.Flag("use_sliding_window") ? json.OptionalInt("sliding_window", 4096) : null;
        if (window is null) return c;
        int first = json.Int("max_window_layers", 28);
        var layers = ModelFamilies.LayerTypes(json, c.NumLayers) ?? Enumerable.Range(0, c.NumLayers).Select(i => i >= first).ToArray();
        return c with { SlidingWindow = window, SlidingLayers = layers };
    }

    private static void WriteWindows(ModelConfig c, System.Text.Json.Nodes.JsonObject o)
    {
        o["hidden_act"] = "silu";
        o["use_sliding_window"] = c.SlidingWindow is not null;
        ModelFamilies.WriteWindows(c, o);
        if (c.SlidingLayers.Count > 0) o["max_window_layers"] = c.SlidingLayers.ToList().IndexOf(true) is var i && i >= 0 ? i : c.NumLayers;
    }
}
