using System.Text.Json.Nodes;
using FinQLoRA.Demo;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Formats.Gguf;

/// <summary>
/// <see cref="SeededFamilies"/>' quirky models as llama.cpp can hold them. The Qwen3 one sets <c>attention_bias</c>,
/// which puts a bias on o_proj too: llama.cpp's <c>qwen3</c> architecture loads q/k/v biases but no
/// <c>attn_output.bias</c>, so the GGUF converter refuses it (see <c>GgufModelConfig</c>) and this variant turns the
/// biases off (published Qwen3 checkpoints have none). Every other quirk stays.
/// </summary>
public static class GgufFamilyModels
{
    /// <summary>The config keys changed from <see cref="SeededFamilies.ConfigJson"/>, per family.</summary>
    public static IReadOnlyDictionary<string, JsonObject> Overrides { get; } = new Dictionary<string, JsonObject>
    {
        ["qwen3"] = new() { ["attention_bias"] = false },
    };

    public static JsonObject ConfigJson(string name, JsonObject? extra = null)
    {
        var json = (JsonObject)SeededFamilies.ConfigJson[name].DeepClone();
        foreach (var edit in new[] { Overrides.GetValueOrDefault(name), extra })
            if (edit != null)
                foreach (var (k, v) in edit) json[k] = v?.DeepClone();
        json["torch_dtype"] = "float32";
        return json;
    }

    /// <summary>Writes the family's model (as <see cref="SeededFamilies.Write"/> does, with the overrides and
    /// <paramref name="extra"/> keys) as an HF folder; returns the folder.</summary>
    public static string Write(string folder, string name, JsonObject? extra = null, long seed = SeededFamilies.Seed)
    {
        var json = ConfigJson(name, extra);
        var config = ModelConfig.FromJson((JsonObject)JsonNode.Parse(json.ToJsonString())!, name); // as a file is read
        RandomLlama.WriteHfFolder(config, folder, seed, ScalarType.Float32, quirks: SeededFamilies.WeightStd);
        File.WriteAllText(Path.Combine(folder, "config.json"), json.ToJsonString());
        SeededTokenizer.Write(folder);
        return folder;
    }
}
