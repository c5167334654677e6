using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FinQLoRA.IO;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// Adapter folders in PEFT's format, so that adapters move freely between FinQLoRA and Python
/// (<c>PeftModel.from_pretrained</c>, vLLM, llama.cpp's convert_lora_to_gguf): <c>adapter_config.json</c> plus
/// <c>adapter_model.safetensors</c> holding <c>base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight</c> [r, in],
/// <c>….lora_B.weight</c> [out, r] and, for DoRA, <c>….lora_magnitude_vector</c> [out].
/// </summary>
public static class PeftAdapterFiles
{
    public const string WeightsFileName = "adapter_model.safetensors";

    /// <summary>
    /// Writes adapter <paramref name="adapterName"/> of the model to <paramref name="dir"/> (replacing that folder as a
    /// whole, atomically). Weights are F32 by default as PEFT saves them; BF16 halves the file (FinLoRA's published adapters).
    /// </summary>
    /// <param name="extraFiles">writes further files into the folder being built (a model card, a lineage record)
    /// before it is put in place, so the folder appears whole</param>
    public static PeftAdapterInfo Save(string dir, DecoderModel model, LoraConfig config, string adapterName = LoraLinear.DefaultAdapter,
        ScalarType dtype = ScalarType.Float32, Action<string>? extraFiles = null)
    {
        if (dtype is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16))
            throw new ArgumentException($"adapter weights are saved as F32, BF16 or F16, not {dtype}", nameof(dtype));
        var modules = LoraInjector.Wrapped(model).Where(w => w.Lora.Adapters.ContainsKey(adapterName)).ToList();
        if (modules.Count == 0)
            throw new UserInputException($"cannot save adapter '{adapterName}': the model has no such adapter (loaded: {string.Join(", ", LoraInjector.AdapterNames(model))})");
        foreach (var w in modules)
        {
            var a = w.Lora.Adapters[adapterName];
            if (a.Rank != config.Rank || Math.Abs(a.Scaling - config.Scaling) > 1e-12 * Math.Abs(config.Scaling) || a.UseDora != config.UseDora)
                throw new ArgumentException($"the config (r {config.Rank}, scaling {config.Scaling}, DoRA {config.UseDora}) does not describe adapter '{adapterName}' at {w.ModulePath} (r {a.Rank}, scaling {a.Scaling}, DoRA {a.UseDora})", nameof(config));
        }
        var targets = model.Config.Family.Projections.Where(p => modules.Any(w => w.Projection == p)).ToList();

        var tensors = new List<KeyValuePair<string, Tensor>>();
        long parameters = 0, tensorBytes = 0, fileBytes = 0;
        try
        {
            using (no_grad())
                foreach (var w in modules)
                    foreach (var (suffix, p) in w.Lora.AdapterParameters(adapterName))
                    {
                        var t = p.detach().to(dtype, CPU);
                        tensors.Add(new(PeftAdapterKey.Canonical(w.ModulePath, suffix), t));
                        parameters += t.numel();
                        tensorBytes += t.numel() * t.element_size();
                    }
            fileBytes = WriteFolder(dir, PeftAdapterConfig.ToJson(config, targets), tensors, extraFiles);
        }
        finally
        {
            foreach (var (_, t) in tensors) t.Dispose();
        }
        return new PeftAdapterInfo(Path.GetFullPath(dir), adapterName, modules.Count, parameters, tensorBytes, fileBytes);
    }

    /// <summary>
    /// Writes a PEFT adapter folder from its parts (replacing <paramref name="dir"/> as a whole, atomically, as
    /// <see cref="Save"/> does): <paramref name="config"/> as adapter_config.json and <paramref name="tensors"/>, named
    /// with their full PEFT keys, as adapter_model.safetensors with PEFT's <c>format: pt</c> metadata.
    /// </summary>
    /// <returns>the size of the weights file in bytes</returns>
    public static long WriteFolder(string dir, JsonObject config, IEnumerable<KeyValuePair<string, Tensor>> tensors, Action<string>? extraFiles = null)
    {
        long fileBytes = 0;
        AtomicFile.WriteDirectory(dir, temp =>
        {
            File.WriteAllText(Path.Combine(temp, PeftAdapterConfig.FileName), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            string weights = Path.Combine(temp, WeightsFileName);
            SafetensorsFile.Write(weights, tensors, new Dictionary<string, string> { ["format"] = "pt" });
            fileBytes = new FileInfo(weights).Length;
            extraFiles?.Invoke(temp);
        });
        return fileBytes;
    }

    /// <summary>
    /// Reads a PEFT adapter folder into the model as adapter <paramref name="adapterName"/> and makes it active.
    /// Everything is checked (keys, shapes against the model, r and DoRA against the config) before the model is touched,
    /// so a bad folder leaves the model as it was. Returns the adapter's config.
    /// </summary>
    public static LoraConfig Load(string dir, DecoderModel model, string adapterName = LoraLinear.DefaultAdapter)
    {
        if (LoraInjector.AdapterNames(model).Contains(adapterName) && Directory.Exists(dir))
            throw new UserInputException($"the model already has an adapter named '{adapterName}'; delete it first or load this one under another name");
        var (config, weights) = ReadToHost(dir, LoraTargetShapes.Of(model));
        using (weights) weights.Install(model, adapterName);
        LoraInjector.SetActiveAdapter(model, adapterName);
        return config;
    }

    /// <summary>Checks a PEFT adapter folder completely against a model's shapes (config, every tensor's key, dtype and
    /// shape, from the file's header) without reading its weights. Returns the adapter's config.</summary>
    public static LoraConfig Check(string dir, LoraTargetShapes shapes)
    {
        var (spec, weightsPath) = Open(dir);
        using var file = new SafetensorsFile(weightsPath);
        ReadParts(file, weightsPath, shapes, spec);
        return spec.Config;
    }

    /// <summary>Reads a PEFT adapter folder into host memory (fp32, CPU), checked as <see cref="Check"/> does; it touches
    /// no model, so any thread may call it.</summary>
    public static (LoraConfig Config, HostLoraAdapter Weights) ReadToHost(string dir, LoraTargetShapes shapes)
    {
        var (spec, weightsPath) = Open(dir);
        var config = spec.Config;
        using var file = new SafetensorsFile(weightsPath);
        var parts = ReadParts(file, weightsPath, shapes, spec);
        var read = new List<HostLoraAdapter.Part>();
        try
        {
            using var noGrad = no_grad();
            foreach (var ((layer, projection), byPart) in parts.OrderBy(p => p.Key.Layer).ThenBy(p => p.Key.Projection))
            {
                Tensor Get(string part)
                {
                    using var raw = file.Read(byPart[part]);
                    return HostLoraAdapter.Copy(raw, CPU);
                }
                read.Add(new HostLoraAdapter.Part(layer, projection, Get(PeftAdapterKey.A), Get(PeftAdapterKey.B),
                    config.UseDora ? Get(PeftAdapterKey.Magnitude) : null, config.Scaling, config.Dropout));
            }
        }
        catch
        {
            new HostLoraAdapter(read).Dispose();
            throw;
        }
        return (config, new HostLoraAdapter(read));
    }

    private static (PeftAdapterSpec Spec, string WeightsPath) Open(string dir)
    {
        if (!Directory.Exists(dir)) throw new UserInputException($"{dir}: adapter folder not found");
        string configPath = Path.Combine(dir, PeftAdapterConfig.FileName);
        string weightsPath = Path.Combine(dir, WeightsFileName);
        var spec = PeftAdapterConfig.Read(configPath);
        if (!File.Exists(weightsPath))
        {
            string hint = File.Exists(Path.Combine(dir, "adapter_model.bin"))
                ? "only the pickle adapter_model.bin is there; re-save it with PEFT's safe_serialization=True"
                : $"a PEFT adapter folder holds {PeftAdapterConfig.FileName} and {WeightsFileName}";
            throw new UserInputException($"{weightsPath}: not found; {hint}");
        }
        return (spec, weightsPath);
    }

    /// <summary>Groups the file's keys by (layer, projection) and checks them completely against the model and config.</summary>
    private static Dictionary<(int Layer, ProjectionKind Projection), Dictionary<string, string>> ReadParts(SafetensorsFile file, string path, LoraTargetShapes model, PeftAdapterSpec spec)
    {
        var config = spec.Config;
        var parts = new Dictionary<(int, ProjectionKind), Dictionary<string, string>>();
        var family = model.Family;
        var targets = config.ResolvedTargets(family, Path.Combine(Path.GetDirectoryName(path) ?? ".", PeftAdapterConfig.FileName));
        foreach (var entry in file.Entries)
        {
            var key = PeftAdapterKey.TryParse(entry.Name, out string why)
                ?? throw new UserInputException($"{path}: unexpected tensor '{entry.Name}' ({why}); this is not a LoRA adapter for a {family.HfArchitecture} model");
            if (!family.Projections.Contains(key.Projection))
                throw new UserInputException($"{path}: tensor '{entry.Name}' is for {ModelLayout.ModuleName(key.Projection)}, which {family.HfArchitecture} ({family.ModelType}) models do not have (their projections: {string.Join(", ", family.Projections.Select(ModelLayout.ModuleName))}); the adapter was made for another model family");
            FloatTensors.Require(path, entry.Name, entry.DType, "a LoRA matrix", "the adapter file is damaged — export it again");
            if (key.Part == PeftAdapterKey.Magnitude && !config.UseDora)
                throw new UserInputException($"{path}: tensor '{entry.Name}' is a DoRA magnitude but {PeftAdapterConfig.FileName} has use_dora false");
            if (key.Layer >= model.ModelLayers)
                throw new UserInputException($"{path}: tensor '{entry.Name}' is for layer {key.Layer} but the model has {model.ModelLayers} layers; the adapter was made for another model");
            if (!targets.Contains(key.Projection))
                throw new UserInputException($"{path}: tensor '{entry.Name}' targets {ModelLayout.ModuleName(key.Projection)}, which {PeftAdapterConfig.FileName} does not list in target_modules ({string.Join(", ", config.TargetModules)})");
            string modulePath = ModelLayout.ModulePath(key.Layer, key.Projection);
            if (spec.TargetPattern is { } pattern && !Regex.IsMatch(modulePath, $"^(?:{pattern})$"))
                throw new UserInputException($"{path}: tensor '{entry.Name}' is for {modulePath}, which target_modules '{pattern}' does not match");

            // a pipeline stage holds layers [FirstLayer, FirstLayer + Layers.Count): it takes their tensors only, by local index
            int local = key.Layer - model.FirstLayer;
            if (local < 0 || local >= model.Layers) continue;
            var byPart = parts.TryGetValue((local, key.Projection), out var d) ? d : parts[(local, key.Projection)] = new();
            if (byPart.TryGetValue(key.Part, out string? other))
                throw new UserInputException($"{path}: tensors '{other}' and '{entry.Name}' are the same weight written twice");
            byPart[key.Part] = entry.Name;

            var (inF, outF) = model.Of(local, key.Projection);
            long[] expected = key.Part switch
            {
                PeftAdapterKey.A => [config.Rank, inF],
                PeftAdapterKey.B => [outF, config.Rank],
                _ => [outF],
            };
            if (!entry.Shape.SequenceEqual(expected))
                throw new UserInputException($"{path}: tensor '{entry.Name}' has shape [{string.Join(", ", entry.Shape)}] but r = {config.Rank} from {PeftAdapterConfig.FileName} and the model's {ModelLayout.ModuleName(key.Projection)} ({inF} → {outF}) need [{string.Join(", ", expected)}]; the adapter belongs to another model or its config is wrong");
            if (entry.DType is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16))
                throw new UserInputException($"{path}: tensor '{entry.Name}' is {entry.DType}; adapter weights must be F32, BF16 or F16");
        }
        if (!file.Entries.Any()) throw new UserInputException($"{path}: holds no LoRA tensors");
        foreach (var ((layer, projection), byPart) in parts)
        {
            string[] needed = config.UseDora ? [PeftAdapterKey.A, PeftAdapterKey.B, PeftAdapterKey.Magnitude] : [PeftAdapterKey.A, PeftAdapterKey.B];
            foreach (string part in needed.Where(p => !byPart.ContainsKey(p)))
                throw new UserInputException($"{path}: {ModelLayout.ModulePath(model.FirstLayer + layer, projection)} has no {part} tensor; the file is incomplete");
        }
        return parts;
    }
}
