using System.Text.Json;
using System.Text.Json.Nodes;

namespace FinQLoRA.Models;

/// <summary>
/// Every shape of a Llama-family model (Llama 2, 3, 3.1, 3.2 and models that differ only in these fields),
/// read from a Hugging Face <c>config.json</c>. The model, the loaders, the quantizer and the memory planner
/// all take their sizes from here.
/// </summary>
public sealed record ModelConfig
{
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
    public bool AttentionBias { get; init; }
    public bool MlpBias { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public int? PadTokenId { get; init; }
    /// <summary>The dtype the checkpoint was saved in (<c>torch_dtype</c>), e.g. "bfloat16".</summary>
    public string TorchDtype { get; init; } = "float32";
    /// <summary>bitsandbytes <c>quantization_config</c> when the checkpoint is pre-quantized, else null.</summary>
    public JsonObject? QuantizationConfig { get; init; }

    public int KvDim => NumKvHeads * HeadDim;
    public int QDim => NumHeads * HeadDim;

    /// <summary>Architectures whose weights and forward pass are the Llama ones.</summary>
    public static readonly IReadOnlySet<string> SupportedArchitectures =
        new HashSet<string> { "LlamaForCausalLM" };

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
        var archs = o["architectures"] as JsonArray;
        string? arch = archs?.FirstOrDefault()?.GetValue<string>();
        string? modelType = o["model_type"]?.GetValue<string>();
        if (arch != null && !SupportedArchitectures.Contains(arch) || arch == null && modelType != "llama")
            throw new UserInputException($"{source}: architecture '{arch ?? modelType ?? "(none)"}' is not supported; FinQLoRA runs Llama-family models (LlamaForCausalLM, model_type \"llama\")");

        int Req(string key) => o[key] is JsonValue v && v.TryGetValue(out int i) && i > 0
            ? i
            : throw new UserInputException($"{source}: '{key}' must be a positive integer (found {o[key]?.ToJsonString() ?? "nothing"})");

        // Optional numbers: a wrong type ("tiny") or an impossible value is named with the key, not left for libtorch.
        double Positive(string key, double fallback)
        {
            if (o[key] is null) return fallback;
            if (o[key] is JsonValue v && v.TryGetValue(out double d) && double.IsFinite(d) && d > 0) return d;
            throw new UserInputException($"{source}: '{key}' must be a positive number (found {o[key]!.ToJsonString()})");
        }
        int OptionalInt(string key, int fallback) => o[key] is null ? fallback : Req(key);
        bool Flag(string key) => o[key] switch
        {
            null => false,
            JsonValue v when v.TryGetValue(out bool b) => b,
            var other => throw new UserInputException($"{source}: '{key}' must be true or false (found {other.ToJsonString()})"),
        };

        int hidden = Req("hidden_size");
        int heads = Req("num_attention_heads");
        int kvHeads = o["num_key_value_heads"] is null ? heads : Req("num_key_value_heads");
        if (o["head_dim"] is null && hidden % heads != 0)
            throw new UserInputException($"{source}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}; without head_dim each head gets hidden_size / num_attention_heads");
        int headDim = OptionalInt("head_dim", hidden / heads);
        if (heads % kvHeads != 0)
            throw new UserInputException($"{source}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
        if (headDim % 2 != 0)
            throw new UserInputException($"{source}: head_dim {headDim} must be even for rotary embeddings");

        return new ModelConfig
        {
            HiddenSize = hidden,
            IntermediateSize = Req("intermediate_size"),
            NumLayers = Req("num_hidden_layers"),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = Req("vocab_size"),
            MaxPositionEmbeddings = OptionalInt("max_position_embeddings", 2048),
            RmsNormEps = Positive("rms_norm_eps", 1e-6),
            RopeTheta = Positive("rope_theta", 10000.0),
            RopeScaling = RopeScaling.FromJson(o["rope_scaling"] as JsonObject, source),
            TieWordEmbeddings = Flag("tie_word_embeddings"),
            AttentionBias = Flag("attention_bias"),
            MlpBias = Flag("mlp_bias"),
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
    }

    /// <summary>The config as Hugging Face writes it, for saving converted, quantized and merged models.</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"),
            ["model_type"] = "llama",
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
            ["attention_bias"] = AttentionBias,
            ["mlp_bias"] = MlpBias,
            ["hidden_act"] = "silu",
            ["torch_dtype"] = TorchDtype,
        };
        if (BosTokenId is int bos) o["bos_token_id"] = bos;
        if (EosTokenIds.Count == 1) o["eos_token_id"] = EosTokenIds[0];
        else if (EosTokenIds.Count > 1) o["eos_token_id"] = new JsonArray(EosTokenIds.Select(i => (JsonNode)i).ToArray());
        if (PadTokenId is int pad) o["pad_token_id"] = pad;
        if (QuantizationConfig != null) o["quantization_config"] = QuantizationConfig.DeepClone();
        return o;
    }

    /// <summary>Named presets with the facts of Meta's config.json files, for the memory planner and tests.</summary>
    public static ModelConfig? Preset(string name) => name.ToLowerInvariant() switch
    {
        "llama-3.1-8b" => Llama31(hidden: 4096, intermediate: 14336, layers: 32, heads: 32),
        "llama-3.1-70b" => Llama31(hidden: 8192, intermediate: 28672, layers: 80, heads: 64),
        _ => null,
    };

    private static ModelConfig Llama31(int hidden, int intermediate, int layers, int heads) => new()
    {
        HiddenSize = hidden, IntermediateSize = intermediate, NumLayers = layers, NumHeads = heads,
        NumKvHeads = 8, HeadDim = hidden / heads, VocabSize = 128256, MaxPositionEmbeddings = 131072,
        RmsNormEps = 1e-5, RopeTheta = 500000.0,
        RopeScaling = new RopeScaling("llama3", 8.0, 1.0, 4.0, 8192),
        TieWordEmbeddings = false, BosTokenId = 128000, EosTokenIds = [128001, 128008, 128009],
        TorchDtype = "bfloat16",
    };
}
