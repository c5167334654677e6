using System.Text.Json.Nodes;

namespace FinQLoRA.Models.Families;

/// <summary>The families FinQLoRA runs, and the one place a config names one of them.</summary>
public static class ModelFamilies
{
    public static IReadOnlyList<ModelFamily> All { get; } =
        [LlamaFamily.Llama, LlamaFamily.Mistral, QwenFamily.Qwen2, QwenFamily.Qwen3, GemmaFamily.Gemma2, GemmaFamily.Gemma3, PhiFamily.Phi3];

    private static string Supported => string.Join(", ", All.Select(f => $"{f.HfArchitecture} ({f.ModelType})"));

    public static ModelFamily ByModelType(string modelType) =>
        All.FirstOrDefault(f => f.ModelType == modelType)
        ?? throw new UserInputException($"model_type '{modelType}' is not supported; FinQLoRA runs {Supported}");

    /// <summary>The families llama.cpp writes as <paramref name="architecture"/>; the first is the one a GGUF file is read as.</summary>
    public static ModelFamily? ByGgufArchitecture(string architecture) => All.FirstOrDefault(f => f.GgufArchitecture == architecture);

    /// <summary>The family of a config.json: by <c>architectures</c>, else by <c>model_type</c>; refused by name otherwise.</summary>
    public static ModelFamily FromConfig(ConfigJson json)
    {
        string? arch = (json.Object["architectures"] as JsonArray)?.FirstOrDefault()?.GetValue<string>();
        string? modelType = json.String("model_type");
        var family = arch != null ? All.FirstOrDefault(f => f.HfArchitecture == arch) : All.FirstOrDefault(f => f.ModelType == modelType);
        if (family == null)
            throw new UserInputException($"{json.Source}: architecture '{arch ?? modelType ?? "(none)"}' is not supported; FinQLoRA runs {Supported}"
                + (modelType == "gemma3" ? " (for Gemma 3 with vision, pass the text-only Gemma3ForCausalLM checkpoint)" : ""));
        return family;
    }

    /// <summary>Per-layer windows from <c>layer_types</c> (transformers' newer configs state them), or null where absent.</summary>
    public static IReadOnlyList<bool>? LayerTypes(ConfigJson json, int layers)
    {
        var types = json.Strings("layer_types");
        if (types == null) return null;
        if (types.Count != layers)
            throw new UserInputException($"{json.Source}: 'layer_types' has {types.Count} entries but num_hidden_layers is {layers}");
        foreach (var t in types)
            if (t is not ("sliding_attention" or "full_attention"))
                throw new UserInputException($"{json.Source}: layer type '{t}' is not supported (sliding_attention, full_attention)");
        return types.Select(t => t == "sliding_attention").ToArray();
    }

    /// <summary>Writes <c>sliding_window</c> and <c>layer_types</c> as transformers does.</summary>
    public static void WriteWindows(ModelConfig c, JsonObject o)
    {
        o["sliding_window"] = c.SlidingWindow;
        if (c.SlidingLayers.Count > 0)
            o["layer_types"] = new JsonArray(c.SlidingLayers.Select(s => (JsonNode)(s ? "sliding_attention" : "full_attention")).ToArray());
    }
}
