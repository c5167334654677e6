using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.IO;
using FinQLoRA.Runtime;

namespace FinQLoRA.Training;

/// <summary>
/// What a model-risk reviewer needs to tie an adapter to its making: the sha256 of every input (model weights,
/// config and tokenizer files, data files, the YAML config), the FinQLoRA version and commit, the command line,
/// and the sha256 of every file of the adapter. Written into the adapter folder as <c>lineage.json</c> (so a copied
/// adapter carries it) and into run.json; <see cref="LineageVerifier"/> checks both.
/// </summary>
public static class RunLineage
{
    public const string FileName = "lineage.json";

    /// <summary>The inputs and provenance of a run (hashing every input file once).</summary>
    public static JsonObject Describe(TrainConfig c)
    {
        var inputs = new JsonObject
        {
            ["model"] = FileHashes.Describe(c.Model),
            ["data"] = new JsonArray(c.DataSources.SelectMany(s => FileHashes.Describe(s.File)).Select(n => n!.DeepClone()).ToArray()),
        };
        if (c.EvalData != null) inputs["eval_data"] = FileHashes.Describe(c.EvalData);
        if (c.ConfigFile != null) inputs["config"] = FileHashes.Describe(c.ConfigFile);
        return new JsonObject
        {
            ["finqlora_version"] = BuildInfo.Version,
            ["commit"] = BuildInfo.Commit,
            ["command_line"] = new JsonArray(Environment.GetCommandLineArgs().Select(a => (JsonNode)a).ToArray()),
            ["inputs"] = inputs,
            [AdapterKey] = Settings(c),
        };
    }

    /// <summary>The adapter settings PEFT's adapter_config.json cannot hold: whether A was frozen at its init (FFA-LoRA)
    /// and the seed it was drawn from (adapters that share it share A, so <c>finqlora adapters average</c> is exact).</summary>
    public static JsonObject Settings(TrainConfig c) => new()
    {
        [LoraAFrozenKey] = c.LoraAFrozen,
        [LoraASeedKey] = c.Seed,
    };

    public const string AdapterKey = "adapter";
    public const string LoraAFrozenKey = "lora_a_frozen";
    public const string LoraASeedKey = "lora_a_seed";

    /// <summary>sha256 of every file in an adapter folder except <paramref name="except"/>, by file name.</summary>
    public static JsonObject HashFolder(string folder, params string[] except)
    {
        var files = new JsonObject();
        foreach (string f in FileHashes.FilesOf(folder).Where(f => !except.Contains(Path.GetFileName(f))))
            files[Path.GetFileName(f)] = FileHashes.Sha256(f);
        return files;
    }

    /// <summary>Writes lineage.json into an adapter folder being built: the run's lineage plus the hashes of the
    /// folder's other files.</summary>
    public static void WriteInto(string adapterFolder, JsonObject lineage)
    {
        var o = (JsonObject)lineage.DeepClone();
        o["adapter_files"] = HashFolder(adapterFolder, FileName);
        File.WriteAllText(Path.Combine(adapterFolder, FileName), o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }
}
