using System.Text.Json.Nodes;

namespace FinQLoRA.Models.Families;

/// <summary>
/// Named models for the memory planner and tests, each the published <c>config.json</c> of its checkpoint (the shape
/// and architecture keys; Gemma 3's is the <c>text_config</c> of gemma-3-12b-it, what Gemma3ForCausalLM reads), read
/// by <see cref="ModelConfig.FromJson"/> so that the family's table sets its switches exactly as it does for the
/// downloaded checkpoint: Qwen2's q/k/v biases, Qwen3's and Gemma 3's q/k norms, Gemma's sandwich norms and tied head,
/// Phi's fused qkv_proj/gate_up_proj.
/// </summary>
public static class ModelPresets
{
    /// <summary>The preset names, in the order help lists them.</summary>
    public static IReadOnlyList<string> Names => [.. Json.Keys];

    /// <summary><see cref="Names"/> as one line, a constant for option help (a test keeps the two the same).</summary>
    public const string NameList = "llama-3.1-8b, llama-3.1-70b, qwen2.5-7b, qwen3-8b, ministral-8b, gemma-2-9b, gemma-3-12b, phi-4-mini";

    /// <summary>The preset's config, or null for a name that is not one.</summary>
    public static ModelConfig? Get(string name) => ConfigJson(name) is { } json ? ModelConfig.FromJson(json, $"preset {name}") : null;

    /// <summary>The preset's config.json as its checkpoint publishes it, read back from its text as a downloaded file is
    /// (a number built in memory keeps its .NET type: an int would not read as a double).</summary>
    public static JsonObject? ConfigJson(string name) =>
        Json.TryGetValue(name.ToLowerInvariant(), out var make) ? (JsonObject)JsonNode.Parse(make().ToJsonString())! : null;

    /// <summary>Phi-4-mini-instruct's <c>rope_scaling.long_factor</c> (one per rotated frequency: 96 / 2).</summary>
    private static readonly double[] Phi4MiniLongFactor =
    [
        1, 1.118320672, 1.250641126, 1.398617824, 1.564103225, 1.74916897, 1.956131817, 2.187582649, 2.446418898,
        2.735880826, 3.059592084, 3.421605075, 3.826451687, 4.279200023, 4.785517845, 5.351743533, 5.984965424,
        6.693110555, 7.485043894, 8.370679318, 9.36110372, 10.4687158, 11.70738129, 13.09260651, 14.64173252,
        16.37415215, 18.31155283, 20.47818807, 22.90118105, 25.61086418, 28.64115884, 32.03, 32.1, 32.13, 32.23, 32.6,
        32.61, 32.64, 32.66, 32.7, 32.71, 32.93, 32.97, 33.28, 33.49, 33.5, 44.16, 47.77,
    ];

    // Factories, so that every caller gets its own mutable JSON tree.
    private static readonly Dictionary<string, Func<JsonObject>> Json = new()
    {
        // meta-llama/Llama-3.1-8B and -70B
        ["llama-3.1-8b"] = () => Llama31(hidden: 4096, intermediate: 14336, layers: 32, heads: 32),
        ["llama-3.1-70b"] = () => Llama31(hidden: 8192, intermediate: 28672, layers: 80, heads: 64),
        // Qwen/Qwen2.5-7B-Instruct (7.62B)
        ["qwen2.5-7b"] = () => new JsonObject
        {
            ["architectures"] = new JsonArray("Qwen2ForCausalLM"), ["model_type"] = "qwen2",
            ["hidden_size"] = 3584, ["intermediate_size"] = 18944, ["num_hidden_layers"] = 28,
            ["num_attention_heads"] = 28, ["num_key_value_heads"] = 4, ["vocab_size"] = 152064,
            ["max_position_embeddings"] = 32768, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 1000000.0,
            ["sliding_window"] = 131072, ["use_sliding_window"] = false, ["max_window_layers"] = 28,
            ["tie_word_embeddings"] = false, ["bos_token_id"] = 151643, ["eos_token_id"] = 151645, ["torch_dtype"] = "bfloat16",
        },
        // Qwen/Qwen3-8B (8.19B)
        ["qwen3-8b"] = () => new JsonObject
        {
            ["architectures"] = new JsonArray("Qwen3ForCausalLM"), ["model_type"] = "qwen3",
            ["hidden_size"] = 4096, ["intermediate_size"] = 12288, ["num_hidden_layers"] = 36,
            ["num_attention_heads"] = 32, ["num_key_value_heads"] = 8, ["head_dim"] = 128, ["vocab_size"] = 151936,
            ["max_position_embeddings"] = 40960, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 1000000.0, ["attention_bias"] = false,
            ["sliding_window"] = null, ["use_sliding_window"] = false, ["max_window_layers"] = 36,
            ["tie_word_embeddings"] = false, ["bos_token_id"] = 151643, ["eos_token_id"] = 151645, ["torch_dtype"] = "bfloat16",
        },
        // mistralai/Ministral-8B-Instruct-2410 (8,019,808,256 parameters); its config.json states one window for every
        // layer (the model card's interleaved 128k/32k pattern is not in it)
        ["ministral-8b"] = () => new JsonObject
        {
            ["architectures"] = new JsonArray("MistralForCausalLM"), ["model_type"] = "mistral",
            ["hidden_size"] = 4096, ["intermediate_size"] = 12288, ["num_hidden_layers"] = 36,
            ["num_attention_heads"] = 32, ["num_key_value_heads"] = 8, ["head_dim"] = 128, ["vocab_size"] = 131072,
            ["max_position_embeddings"] = 32768, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 100000000.0, ["sliding_window"] = 32768,
            ["tie_word_embeddings"] = false, ["bos_token_id"] = 1, ["eos_token_id"] = 2, ["torch_dtype"] = "bfloat16",
        },
        // google/gemma-2-9b (9.24B)
        ["gemma-2-9b"] = () => new JsonObject
        {
            ["architectures"] = new JsonArray("Gemma2ForCausalLM"), ["model_type"] = "gemma2",
            ["hidden_size"] = 3584, ["intermediate_size"] = 14336, ["num_hidden_layers"] = 42,
            ["num_attention_heads"] = 16, ["num_key_value_heads"] = 8, ["head_dim"] = 256, ["vocab_size"] = 256000,
            ["max_position_embeddings"] = 8192, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 10000.0,
            ["hidden_activation"] = "gelu_pytorch_tanh", ["query_pre_attn_scalar"] = 256,
            ["attn_logit_softcapping"] = 50.0, ["final_logit_softcapping"] = 30.0, ["sliding_window"] = 4096,
            ["attention_bias"] = false, ["tie_word_embeddings"] = true,
            ["bos_token_id"] = 2, ["eos_token_id"] = 1, ["pad_token_id"] = 0, ["torch_dtype"] = "float32",
        },
        // google/gemma-3-12b-it's text_config (11.77B without the vision tower)
        ["gemma-3-12b"] = () => new JsonObject
        {
            ["architectures"] = new JsonArray("Gemma3ForCausalLM"), ["model_type"] = "gemma3_text",
            ["hidden_size"] = 3840, ["intermediate_size"] = 15360, ["num_hidden_layers"] = 48,
            ["num_attention_heads"] = 16, ["num_key_value_heads"] = 8, ["head_dim"] = 256, ["vocab_size"] = 262208,
            ["max_position_embeddings"] = 131072, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 1000000.0,
            ["rope_local_base_freq"] = 10000.0, ["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = 8.0 },
            ["hidden_activation"] = "gelu_pytorch_tanh", ["query_pre_attn_scalar"] = 256,
            ["attn_logit_softcapping"] = null, ["final_logit_softcapping"] = null,
            ["sliding_window"] = 1024, ["sliding_window_pattern"] = 6, ["attention_bias"] = false, ["tie_word_embeddings"] = true,
            ["bos_token_id"] = 2, ["eos_token_id"] = new JsonArray(1, 106), ["pad_token_id"] = 0, ["torch_dtype"] = "bfloat16",
        },
        // microsoft/Phi-4-mini-instruct (3.84B): qkv_proj and gate_up_proj, RoPE on 96 of 128 dimensions, LongRoPE
        ["phi-4-mini"] = () => new JsonObject
        {
            ["architectures"] = new JsonArray("Phi3ForCausalLM"), ["model_type"] = "phi3",
            ["hidden_size"] = 3072, ["intermediate_size"] = 8192, ["num_hidden_layers"] = 32,
            ["num_attention_heads"] = 24, ["num_key_value_heads"] = 8, ["vocab_size"] = 200064,
            ["max_position_embeddings"] = 131072, ["original_max_position_embeddings"] = 4096, ["rms_norm_eps"] = 1e-5,
            ["rope_theta"] = 10000.0, ["partial_rotary_factor"] = 0.75, ["sliding_window"] = 262144,
            ["rope_scaling"] = new JsonObject
            {
                ["type"] = "longrope",
                ["short_factor"] = new JsonArray([.. Enumerable.Range(0, 48).Select(_ => (JsonNode?)1.0)]),
                ["long_factor"] = new JsonArray([.. Phi4MiniLongFactor.Select(f => (JsonNode?)f)]),
            },
            ["tie_word_embeddings"] = true, ["bos_token_id"] = 199999, ["eos_token_id"] = 199999, ["pad_token_id"] = 199999,
            ["torch_dtype"] = "bfloat16",
        },
    };

    private static JsonObject Llama31(int hidden, int intermediate, int layers, int heads) => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"), ["model_type"] = "llama",
        ["hidden_size"] = hidden, ["intermediate_size"] = intermediate, ["num_hidden_layers"] = layers,
        ["num_attention_heads"] = heads, ["num_key_value_heads"] = 8, ["head_dim"] = hidden / heads, ["vocab_size"] = 128256,
        ["max_position_embeddings"] = 131072, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 500000.0,
        ["rope_scaling"] = new JsonObject
        {
            ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
            ["original_max_position_embeddings"] = 8192,
        },
        ["attention_bias"] = false, ["mlp_bias"] = false, ["tie_word_embeddings"] = false,
        ["bos_token_id"] = 128000, ["eos_token_id"] = new JsonArray(128001, 128008, 128009), ["torch_dtype"] = "bfloat16",
    };
}
