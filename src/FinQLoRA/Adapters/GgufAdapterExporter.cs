using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Formats.Gguf;
using TorchSharp;

namespace FinQLoRA.Adapters;

/// <summary>
/// Exports a PEFT LoRA adapter folder (<c>adapter_config.json</c> + <c>adapter_model.safetensors</c>) as a llama.cpp
/// LoRA GGUF: <c>general.type = adapter</c>, <c>adapter.type = lora</c>, <c>adapter.lora.alpha</c>, and per module
/// <c>blk.N.&lt;tensor&gt;.weight.lora_a</c> (PEFT lora_A [r, in], ne [in, r]) and <c>.lora_b</c> (lora_B [out, r],
/// ne [r, out]). llama.cpp scales by alpha/r with r read from lora_b, so rsLoRA (alpha/√r) is written as alpha·√r.
/// <c>general.architecture</c> is the base model's (llama.cpp refuses an adapter of another architecture), so the base
/// must be known; the GGUF names are the family's (Phi-3's fused <c>qkv_proj</c> → <c>attn_qkv</c>, <c>gate_up_proj</c>
/// → <c>ffn_up</c>). Where the architecture rotates interleaved (llama), the rows of q/k lora_B are permuted into
/// GGUF's RoPE order: P·(B·A) = (P·B)·A.
/// </summary>
public static class GgufAdapterExporter
{
    /// <param name="basePath">The base model (HF folder or GGUF), for its architecture, shapes and head counts;
    /// defaults to the adapter's base_model_name_or_path when that is a local folder.</param>
    /// <param name="overwrite">replace an existing <paramref name="outFile"/> (never an input)</param>
    public static void Export(string adapterFolder, string outFile, string? basePath = null, bool overwrite = false)
    {
        IO.OutputPlacement.CheckFile(outFile, [adapterFolder, basePath], overwrite);
        string configPath = Path.Combine(adapterFolder, "adapter_config.json");
        string weightsPath = Path.Combine(adapterFolder, "adapter_model.safetensors");
        if (!File.Exists(configPath)) throw UserInputException.About($"{adapterFolder}: no adapter_config.json; point {new ConfigField("adapter")} at a PEFT adapter folder");
        if (!File.Exists(weightsPath)) throw new UserInputException($"{adapterFolder}: no adapter_model.safetensors; save the adapter in safetensors format");
        JsonObject cfg;
        try { cfg = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new UserInputException($"{configPath}: expected a JSON object"); }
        catch (JsonException e) { throw new UserInputException($"{configPath}: not valid JSON ({e.Message})"); }

        if (cfg["use_dora"]?.GetValue<bool>() == true)
            throw new UserInputException($"{configPath}: use_dora is true; llama.cpp LoRA GGUF has no DoRA magnitude vector — merge the adapter into the base model and convert the merged model instead");
        string peftType = cfg["peft_type"]?.GetValue<string>() ?? "LORA";
        if (peftType != "LORA") throw new UserInputException($"{configPath}: peft_type '{peftType}' is not LoRA");
        int r = cfg["r"]?.GetValue<int>() ?? throw new UserInputException($"{configPath}: missing 'r'");
        double alpha = cfg["lora_alpha"]?.GetValue<double>() ?? r;
        bool rsLora = cfg["use_rslora"]?.GetValue<bool>() ?? false;
        if (cfg["alpha_pattern"] is JsonObject { Count: > 0 })
            throw new UserInputException($"{configPath}: alpha_pattern gives modules their own alpha; llama.cpp adapters have one alpha — merge the adapter instead");
        if (rsLora && cfg["rank_pattern"] is JsonObject { Count: > 0 })
            throw new UserInputException($"{configPath}: rsLoRA with a rank_pattern cannot be expressed with llama.cpp's single alpha — merge the adapter instead");
        // llama.cpp: scale = alpha / r. rsLoRA wants alpha / √r, hence alpha·√r.
        double ggufAlpha = rsLora ? alpha * Math.Sqrt(r) : alpha;

        using var file = new SafetensorsFile(weightsPath);
        // ordered by layer, then by module path as text (the tensor order of the files this has always written)
        var pairs = new SortedDictionary<(int Layer, string Module, ProjectionKind Kind), (string? A, string? B)>();
        foreach (var e in file.Entries)
        {
            var parsed = e.Name.StartsWith(PeftAdapterKey.Prefix, StringComparison.Ordinal) ? PeftAdapterKey.TryParse(e.Name, out _) : null;
            if (parsed is null || parsed.Part == PeftAdapterKey.Magnitude)
                throw new UserInputException($"{weightsPath}: tensor '{e.Name}' is not a LoRA matrix of an attention/MLP projection; llama.cpp export supports the projections of the base model's block only");
            var key = (parsed.Layer, ModelLayout.Relative(parsed.Projection), parsed.Projection);
            var p = pairs.GetValueOrDefault(key);
            pairs[key] = parsed.Part == PeftAdapterKey.A ? p with { A = e.Name } : p with { B = e.Name };
        }
        if (pairs.Count == 0) throw new UserInputException($"{weightsPath}: no LoRA tensors found");

        ModelConfig config = (basePath != null ? LoadBaseConfig(basePath) : FindBaseConfig(cfg, adapterFolder))
            ?? throw UserInputException.About($"{adapterFolder}: the base model is not known (base_model_name_or_path is not a local folder); pass {new ConfigField("base")} with the base model (HF folder or GGUF) so that the adapter names its architecture and shapes");
        var writer = new GgufWriter();
        writer.Add("general.architecture", config.Family.GgufArchitecture);
        writer.Add("general.type", "adapter");
        writer.Add("adapter.type", "lora");
        writer.Add("adapter.lora.alpha", (float)ggufAlpha);
        foreach (var ((layer, module, kind), (a, b)) in pairs)
        {
            if (a == null || b == null)
                throw new UserInputException($"{weightsPath}: layer {layer} {module} has lora_{(a == null ? "A" : "B")} missing");
            string ggufWeight = ModelLayout.GgufWeightName(layer, kind);
            var aShape = file.Entry(a).Shape;
            var bShape = file.Entry(b).Shape;
            if (aShape.Length != 2 || bShape.Length != 2 || aShape[0] != bShape[1])
                throw new UserInputException($"{weightsPath}: {module} of layer {layer} has lora_A [{string.Join(", ", aShape)}] and lora_B [{string.Join(", ", bShape)}], which do not chain (expected [r, in] and [out, r])");
            if (!config.Family.Projections.Contains(kind))
                throw new UserInputException($"{weightsPath}: {module} of layer {layer} is not a projection of the base model's {config.Family.HfArchitecture} block ({string.Join(", ", config.Family.Projections.Select(ModelLayout.ModuleName))}); is the base the model this adapter was trained on?");
            var (inFeatures, outFeatures) = ModelLayout.Shape(config, kind);
            if (bShape[0] != outFeatures || aShape[1] != inFeatures || layer >= config.NumLayers)
                throw UserInputException.About($"{weightsPath}: {module} of layer {layer} has lora_A [{string.Join(", ", aShape)}] and lora_B [{string.Join(", ", bShape)}] but the base model's {module} is [{outFeatures}, {inFeatures}] with {config.NumLayers} layers; is {new ConfigField("base")} the model this adapter was trained on?");
            int? heads = ModelLayout.RopeHeads(kind, config);
            string an = a, bn = b;
            writer.AddTensor($"{ggufWeight}.lora_a", GgmlType.F32, aShape, () => file.Read(an));
            writer.AddTensor($"{ggufWeight}.lora_b", GgmlType.F32, bShape, () =>
            {
                var t = file.Read(bn);
                return heads is int h ? RopePermutation.ToGguf(t, h) : t;
            });
        }
        writer.Write(outFile);
    }

    private static ModelConfig LoadBaseConfig(string path)
    {
        if (Directory.Exists(path)) return ModelConfig.Load(path);
        if (!File.Exists(path)) throw UserInputException.About($"{new ConfigField("base")} {path}: not found; pass the base model's HF folder or GGUF file");
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return ModelConfig.Load(path);
        using var reader = new GgufCheckpointReader(path);
        return reader.Config;
    }

    private static ModelConfig? FindBaseConfig(JsonObject cfg, string adapterFolder)
    {
        string? name = cfg["base_model_name_or_path"]?.GetValue<string>();
        if (string.IsNullOrEmpty(name)) return null;
        string path = Path.IsPathRooted(name) ? name : Path.Combine(adapterFolder, name);
        return File.Exists(Path.Combine(path, "config.json")) ? ModelConfig.Load(path)
            : File.Exists(Path.Combine(name, "config.json")) ? ModelConfig.Load(name)
            : null;
    }
}
