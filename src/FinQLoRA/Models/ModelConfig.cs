using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Models.Families;

namespace FinQLoRA.Models;

/// <summary>
/// Every shape and every architectural switch of a decoder model, read from a Hugging Face <c>config.json</c>
/// (litgpt's <c>Config</c>): one <see cref="DecoderModel"/> runs Llama, Mistral, Qwen2/2.5, Qwen3, Gemma 2/3 and Phi-3/4
/// from these fields alone; <see cref="Family"/> only names where the checkpoint keeps each tensor. The model, the
/// loaders, the quantizer and the memory planner all take their sizes from here.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>config.json's <c>model_type</c>; picks the <see cref="Family"/> (layout table and config keys).</summary>
    public string ModelType { get; init; } = "llama";
    public int HiddenSize { get; init; }
    public int IntermediateSize { get; init; }
    public int NumLayers { get; init; }
    public int NumHeads { get; init; }
    public int NumKvHeads { get; init; }
    public int HeadDim { get; init; }
    public int VocabSize { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double RmsNormEps { get; init; } = 1e-5;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Biases on q, k and v (Qwen2; Llama's and Qwen3's <c>attention_bias</c>).</summary>
    public bool QkvBias { get; init; }
    /// <summary>A bias on o_proj (Llama's and Qwen3's <c>attention_bias</c>; Qwen2 has none).</summary>
    public bool OutputBias { get; init; }
    public bool MlpBias { get; init; }

    // ── architecture switches (all off for Llama) ──
    /// <summary>Per-head RMSNorm on queries and keys before RoPE (Qwen3, Gemma 3).</summary>
    public bool QkNorm { get; init; }
    /// <summary>RMSNorm scales by <c>offset + w</c>: 0 for Llama, 1 for Gemma (whose norm weights are stored as w).</summary>
    public double NormOffset { get; init; }
    public Activation Activation { get; init; } = Activation.Silu;
    /// <summary>Norms on attention's and the MLP's outputs too (Gemma's pre- and post-norms).</summary>
    public bool SandwichNorms { get; init; }
    /// <summary>Embeddings multiplied by √hidden (Gemma), in the compute dtype as Hugging Face does.</summary>
    public bool ScaleEmbeddings { get; init; }
    /// <summary>Attention scores soft-capped as <c>cap · tanh(s / cap)</c> (Gemma 2: 50), or null.</summary>
    public double? AttentionSoftcap { get; init; }
    /// <summary>Final logits soft-capped likewise (Gemma 2: 30), or null.</summary>
    public double? FinalSoftcap { get; init; }
    /// <summary>Queries are scaled by 1/√this (Gemma's <c>query_pre_attn_scalar</c>); null means head_dim.</summary>
    public double? QueryPreAttnScalar { get; init; }
    /// <summary>Keys further back than this many positions are not seen by a windowed layer (<c>sliding_window</c>).</summary>
    public int? SlidingWindow { get; init; }
    /// <summary>Which layers use <see cref="SlidingWindow"/> (one entry per layer); empty means none.</summary>
    public IReadOnlyList<bool> SlidingLayers { get; init; } = [];
    /// <summary>RoPE base of the windowed layers where it differs (Gemma 3's <c>rope_local_base_freq</c>); those layers
    /// then take no <see cref="RopeScaling"/>.</summary>
    public double? LocalRopeTheta { get; init; }
    /// <summary>The share of each head that is rotated (Phi's <c>partial_rotary_factor</c>); the rest passes as it is.</summary>
    public double PartialRotaryFactor { get; init; } = 1.0;

    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public int? PadTokenId { get; init; }
    /// <summary>The dtype the checkpoint was saved in (<c>torch_dtype</c>), e.g. "bfloat16".</summary>
    public string TorchDtype { get; init; } = "float32";
    /// <summary>bitsandbytes <c>quantization_config</c> when the checkpoint is pre-quantized, else null.</summary>
    public JsonObject? QuantizationConfig { get; init; }

    public int KvDim => NumKvHeads * HeadDim;
    public int QDim => NumHeads * HeadDim;
    /// <summary>The family whose layout table and config keys this model follows.</summary>
    public ModelFamily Family => ModelFamilies.ByModelType(ModelType);
    /// <summary>How many dimensions of each head RoPE rotates (even).</summary>
    public int RotaryDim => (int)(HeadDim * PartialRotaryFactor) / 2 * 2;
    /// <summary>The factor queries are multiplied by before q·k.</summary>
    public double QueryScale => 1.0 / Math.Sqrt(QueryPreAttnScalar ?? HeadDim);
    /// <summary>The window of layer <paramref name="layer"/>, or null for full causal attention.</summary>
    public int? WindowOf(int layer) => SlidingLayers.Count > layer && SlidingLayers[layer] ? SlidingWindow : null;
    /// <summary>The RoPE base and scaling of layer <paramref name="layer"/>.</summary>
    public (double Theta, RopeScaling? Scaling) RopeOf(int layer) =>
        LocalRopeTheta is double local && WindowOf(layer) is not null ? (local, null) : (RopeTheta, RopeScaling);

    public static ModelConfig Load(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, "config.json") : path;
        if (!File.Exists(file))
            throw new UserInputException($"{file}: not found; a Hugging Face model folder needs config.json");
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(file)); }
        catch (JsonException e) { throw new UserInputException($"{file}: not valid JSON ({e.Message})"); }
        if (root is not JsonObject obj) throw new UserInputException($"{file}: expected a JSON object");
        return FromJson(obj, file);
    }

    public static ModelConfig FromJson(JsonObject o, string source)
    {
        var json = new ConfigJson(o, source);
        var family = ModelFamilies.FromConfig(json);

        int hidden = json.Required("hidden_size");
        int heads = json.Required("num_attention_heads");
        int kvHeads = json.Has("num_key_value_heads") ? json.Required("num_key_value_heads") : heads;
        if (!json.Has("head_dim") && hidden % heads != 0)
            throw new UserInputException($"{source}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}; without head_dim each head gets hidden_size / num_attention_heads");
        int headDim = json.Int("head_dim", hidden / heads);
        if (heads % kvHeads != 0)
            throw new UserInputException($"{source}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
        if (headDim % 2 != 0)
            throw new UserInputException($"{source}: head_dim {headDim} must be even for rotary embeddings");

        var common = new ModelConfig
        {
            ModelType = family.ModelType,
            HiddenSize = hidden,
            IntermediateSize = json.Required("intermediate_size"),
            NumLayers = json.Required("num_hidden_layers"),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = json.Required("vocab_size"),
            MaxPositionEmbeddings = json.Int("max_position_embeddings", 2048),
            RmsNormEps = json.Positive("rms_norm_eps", 1e-6),
            RopeTheta = json.Positive("rope_theta", 10000.0),
            TieWordEmbeddings = json.Flag("tie_word_embeddings"),
            MlpBias = json.Flag("mlp_bias"),
            BosTokenId = o["bos_token_id"] is JsonValue b ? b.GetValue<int>() : null,
            EosTokenIds = o["eos_token_id"] switch
            {
                JsonArray a => a.Select(x => x!.GetValue<int>()).ToArray(),
                JsonValue v => [v.GetValue<int>()],
                _ => [],
            },
            PadTokenId = o["pad_token_id"] is JsonValue p ? p.GetValue<int>() : null,
            TorchDtype = o["torch_dtype"]?.GetValue<string>() ?? o["dtype"]?.GetValue<string>() ?? "float32",
            QuantizationConfig = o["quantization_config"]?.DeepClone() as JsonObject,
        };
        var config = family.ReadArchitecture(json, common);
        var rotary = config with { RopeScaling = RopeScaling.FromJson(o["rope_scaling"] as JsonObject, source, config, o) };
        if (rotary.RotaryDim <= 0 || rotary.RotaryDim > rotary.HeadDim)
            throw new UserInputException($"{source}: partial_rotary_factor {rotary.PartialRotaryFactor} leaves no rotated dimensions of head_dim {rotary.HeadDim}");
        return rotary;
    }

    /// <summary>The config as Hugging Face writes it, for saving converted, quantized and merged models.</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(Family.HfArchitecture),
            ["model_type"] = ModelType,
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumLayers,
            ["num_attention_heads"] = NumHeads,
            ["num_key_value_heads"] = NumKvHeads,
            ["head_dim"] = HeadDim,
            ["vocab_size"] = VocabSize,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_theta"] = RopeTheta,
            ["rope_scaling"] = RopeScaling?.ToJson(),
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["mlp_bias"] = MlpBias,
            ["torch_dtype"] = TorchDtype,
        };
        Family.WriteArchitecture(this, o);
        if (BosTokenId is int bos) o["bos_token_id"] = bos;
        if (EosTokenIds.Count == 1) o["eos_token_id"] = EosTokenIds[0];
        else if (EosTokenIds.Count > 1) o["eos_token_id"] = new JsonArray(EosTokenIds.Select(i => (JsonNode)i).ToArray());
        if (PadTokenId is int pad) o["pad_token_id"] = pad;
        if (QuantizationConfig != null) o["quantization_config"] = QuantizationConfig.DeepClone();
        return o;
    }
}
