using System.Text.Json.Nodes;
using FinQLoRA.Demo;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Support;

/// <summary>
/// One small seeded random model per family with every quirk of that family active, for checks against llama.cpp and
/// against the reference forwards: non-zero biases, q/k norm weights ≠ 1, tied and untied heads, a sliding window
/// (<see cref="Window"/> positions) shorter than a test prompt, soft-caps that bind (weights of std
/// <see cref="WeightStd"/> make logits of order 1), partial rotary, YaRN and LongRoPE. Each config is written as the
/// family's own config.json (so it is read by the family's table) with <see cref="SeededTokenizer"/>'s 512 tokens.
/// </summary>
public static class SeededFamilies
{
    public const int Window = 6;
    public const double WeightStd = 0.15;
    public const long Seed = 2201;

    /// <summary>The config.json of each family's quirky model, by name.</summary>
    public static IReadOnlyDictionary<string, JsonObject> ConfigJson { get; } = new Dictionary<string, JsonObject>
    {
        ["llama3.2"] = Common("LlamaForCausalLM", "llama", tie: true, extra: new()
        {
            ["rope_theta"] = 500000.0,
            ["rope_scaling"] = new JsonObject { ["rope_type"] = "llama3", ["factor"] = 32.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 64 },
        }),
        ["mistral"] = Common("MistralForCausalLM", "mistral", tie: false, extra: new() { ["sliding_window"] = Window }),
        ["qwen2"] = Common("Qwen2ForCausalLM", "qwen2", tie: true, extra: new()
        {
            ["rope_theta"] = 1000000.0,
            ["rope_scaling"] = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0, ["original_max_position_embeddings"] = 32 },
            ["use_sliding_window"] = false, ["sliding_window"] = 4096, ["max_window_layers"] = 2,
        }),
        ["qwen3"] = Common("Qwen3ForCausalLM", "qwen3", tie: false, extra: new() { ["rope_theta"] = 1000000.0, ["head_dim"] = 24 }),
        ["gemma2"] = Common("Gemma2ForCausalLM", "gemma2", tie: true, extra: new()
        {
            ["hidden_activation"] = "gelu_pytorch_tanh", ["head_dim"] = 16, ["query_pre_attn_scalar"] = 16,
            ["attn_logit_softcapping"] = 1.0, ["final_logit_softcapping"] = 2.0, ["sliding_window"] = Window,
        }),
        ["gemma3"] = Common("Gemma3ForCausalLM", "gemma3_text", tie: true, layers: 6, extra: new()
        {
            ["hidden_activation"] = "gelu_pytorch_tanh", ["head_dim"] = 16, ["query_pre_attn_scalar"] = 16,
            ["sliding_window"] = Window, ["sliding_window_pattern"] = 6, ["rope_theta"] = 1000000.0, ["rope_local_base_freq"] = 10000.0,
            ["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = 8.0 },
        }),
        ["phi3"] = Common("Phi3ForCausalLM", "phi3", tie: false, extra: new()
        {
            ["partial_rotary_factor"] = 0.75, ["original_max_position_embeddings"] = 64, ["max_position_embeddings"] = 256,
            ["rope_scaling"] = new JsonObject
            {
                ["type"] = "longrope",
                ["short_factor"] = new JsonArray(1.0, 1.1, 1.3, 1.6, 2.0, 2.5),
                ["long_factor"] = new JsonArray(1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
            },
        }),
    };

    public static IEnumerable<object[]> Names => ConfigJson.Keys.Select(k => new object[] { k });

    public static ModelConfig Config(string name) => ModelConfig.FromJson((JsonObject)JsonNode.Parse(ConfigJson[name].ToJsonString())!, name);

    /// <summary>Writes the quirky model of <paramref name="name"/> as an HF folder with the seeded tokenizer; returns the folder.</summary>
    public static string Write(string folder, string name, long seed = Seed)
    {
        var config = Config(name);
        RandomLlama.WriteHfFolder(config, folder, seed, ScalarType.Float32, quirks: WeightStd);
        // the family's own config.json, as its published checkpoints write it (not our rewrite of it)
        var json = (JsonObject)ConfigJson[name].DeepClone();
        json["torch_dtype"] = "float32";
        File.WriteAllText(Path.Combine(folder, "config.json"), json.ToJsonString());
        SeededTokenizer.Write(folder);
        return folder;
    }

    public static DecoderModel Load(string folder) => ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.Float32 });

    private static JsonObject Common(string architecture, string modelType, bool tie, JsonObject extra, int layers = 4)
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(architecture), ["model_type"] = modelType,
            ["hidden_size"] = 64, ["intermediate_size"] = 96, ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = 4, ["num_key_value_heads"] = 2, ["vocab_size"] = SeededTokenizer.VocabSize,
            ["max_position_embeddings"] = 256, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 10000.0,
            ["tie_word_embeddings"] = tie, ["bos_token_id"] = SeededTokenizer.Bos, ["eos_token_id"] = SeededTokenizer.Eos,
            ["attention_bias"] = modelType is "llama" or "qwen3",
        };
        foreach (var (k, v) in extra) o[k] = v?.DeepClone();
        return o;
    }
}
