using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.IO;
using FinQLoRA.Training;

namespace FinQLoRA.Adapters.Averaging;

/// <summary>
/// One input of an average, opened: its adapter_config.json (raw and parsed), the header of its weights file, the sha256
/// of that file, and what its lineage.json (when FinQLoRA wrote it) says about the base and about A. No weights are read
/// here; <see cref="Weights"/> reads them when asked.
/// </summary>
public sealed class AdapterToAverage : IDisposable
{
    private AdapterToAverage(AveragedAdapterInput input, JsonObject configJson, LoraConfig config, JsonObject? lineage,
        string weightsPath, SafetensorsFile weights)
    {
        Input = input;
        ConfigJson = configJson;
        Config = config;
        Lineage = lineage;
        WeightsPath = weightsPath;
        Weights = weights;
        var adapter = lineage?[RunLineage.AdapterKey] as JsonObject;
        LoraAFrozen = adapter?[RunLineage.LoraAFrozenKey] is JsonValue f && f.TryGetValue(out bool frozen) && frozen;
        LoraASeed = adapter?[RunLineage.LoraASeedKey] is JsonValue s && s.TryGetValue(out long seed) ? seed : null;
        BaseWeights = BaseWeightHashes(lineage);
    }

    public AveragedAdapterInput Input { get; }
    public JsonObject ConfigJson { get; }
    public LoraConfig Config { get; }
    /// <summary>lineage.json, or null when the folder has none (an adapter from PEFT or the Hub).</summary>
    public JsonObject? Lineage { get; }
    public string WeightsPath { get; }
    public SafetensorsFile Weights { get; }
    /// <summary>FFA-LoRA as the lineage records it; an adapter without lineage counts as trained with A.</summary>
    public bool LoraAFrozen { get; }
    public long? LoraASeed { get; }
    /// <summary>"file=sha256" of the base's weight files (.safetensors, .gguf, .bin) from the lineage, in name order;
    /// null when the lineage does not list them. File names, not paths: sites keep the base in different folders.</summary>
    public string? BaseWeights { get; }

    /// <summary>Opens <paramref name="input"/>'s folder: a refusal names the input, the file and what is wrong.</summary>
    public static AdapterToAverage Open(AveragedAdapterInput input)
    {
        if (!Directory.Exists(input.Dir))
            throw new UserInputException($"adapters average: adapter {input}: folder not found");
        string configPath = Path.Combine(input.Dir, PeftAdapterConfig.FileName);
        string weightsPath = Path.Combine(input.Dir, PeftAdapterFiles.WeightsFileName);
        LoraConfig config;
        JsonObject configJson;
        JsonObject? lineage = null;
        try
        {
            config = PeftAdapterConfig.Read(configPath).Config;
            configJson = (JsonObject)JsonNode.Parse(File.ReadAllText(configPath))!;
            string lineagePath = Path.Combine(input.Dir, RunLineage.FileName);
            if (File.Exists(lineagePath)) lineage = RunRecord.Read(lineagePath);
            if (!File.Exists(weightsPath)) throw new UserInputException($"{weightsPath}: not found; a PEFT adapter folder holds {PeftAdapterConfig.FileName} and {PeftAdapterFiles.WeightsFileName}");
        }
        catch (UserInputException e)
        {
            throw new UserInputException($"adapters average: adapter {input}: {e.Message}");
        }
        catch (JsonException e)
        {
            throw new UserInputException($"adapters average: adapter {input}: {configPath}: malformed JSON ({e.Message})");
        }
        return new AdapterToAverage(input, configJson, config, lineage, weightsPath, new SafetensorsFile(weightsPath));
    }

    /// <summary>sha256 of the weights file, as lineage records inputs.</summary>
    public JsonObject DescribeWeights() => new()
    {
        ["path"] = Path.GetFullPath(WeightsPath), ["bytes"] = new FileInfo(WeightsPath).Length, ["sha256"] = FileHashes.Sha256(WeightsPath),
    };

    public void Dispose() => Weights.Dispose();

    private static string? BaseWeightHashes(JsonObject? lineage)
    {
        if (lineage?["inputs"]?["model"] is not JsonArray files) return null;
        var weights = files.OfType<JsonObject>()
            .Select(f => (Name: Path.GetFileName(f["path"]?.GetValue<string>() ?? ""), Sha: f["sha256"]?.GetValue<string>()))
            .Where(f => f.Sha != null && (f.Name.EndsWith(".safetensors", StringComparison.Ordinal) || f.Name.EndsWith(".gguf", StringComparison.Ordinal) || f.Name.EndsWith(".bin", StringComparison.Ordinal)))
            .OrderBy(f => f.Name, StringComparer.Ordinal).Select(f => $"{f.Name}={f.Sha}").ToList();
        return weights.Count == 0 ? null : string.Join(",", weights);
    }
}
