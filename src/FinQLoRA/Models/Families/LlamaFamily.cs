namespace FinQLoRA.Models.Families;

/// <summary>Llama 2/3/3.1/3.2/3.3 and Mistral/Ministral: the plain pre-norm block. Mistral adds a sliding window
/// (<c>sliding_window</c>, null for none; every layer, or those <c>layer_types</c> names). llama.cpp writes both as
/// its <c>llama</c> architecture, with q/k rows permuted to its interleaved RoPE.</summary>
public static class LlamaFamily
{
    public static readonly ModelFamily Llama = new()
    {
        ModelType = "llama",
        HfArchitecture = "LlamaForCausalLM",
        GgufArchitecture = "llama",
        GgufPermutesRope = true,
        Norms = [CommonNorms.AttentionInput, CommonNorms.PreNormMlp],
        ReadArchitecture = (json, c) => c with { QkvBias = json.Flag("attention_bias"), OutputBias = json.Flag("attention_bias") },
        WriteArchitecture = (c, o) =>
        {
            o["attention_bias"] = c.QkvBias;
            o["hidden_act"] = "silu";
        },
    };

    public static readonly ModelFamily Mistral = Llama with
    {
        ModelType = "mistral",
        HfArchitecture = "MistralForCausalLM",
        ReadArchitecture = (json, c) =>
        {
            int? window = json.OptionalInt("sliding_window", 4096); // MistralConfig's default; null turns it off
            var layers = ModelFamilies.LayerTypes(json, c.NumLayers) ?? Enumerable.Repeat(window is not null, c.NumLayers).ToArray();
            return c with { SlidingWindow = window, SlidingLayers = window is null ? [] : layers };
        },
        WriteArchitecture = (c, o) =>
        {
            o["hidden_act"] = "silu";
            ModelFamilies.WriteWindows(c, o);
        },
    };
}
