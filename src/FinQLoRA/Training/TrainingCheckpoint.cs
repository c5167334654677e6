using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.IO;
using FinQLoRA.Models;
using FinQLoRA.Models.Checkpoints;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>
/// <c>checkpoint-&lt;step&gt;/</c>: everything a run needs to continue bit-identically — the adapter (PEFT files),
/// optimizer tensors and scalars, the schedule's step, the random state (dropout) and the data position
/// (epoch and next batch; the batch order itself is a pure function of seed and epoch). Written as a whole
/// folder under a temp name and renamed, so a kill mid-save leaves the previous checkpoint intact.
/// </summary>
public sealed record TrainingCheckpoint(int Step, int Epoch, int NextBatch, double LastLoss)
{
    public const string Prefix = "checkpoint-";
    private const string StateFile = "trainer_state.json";
    private const string TensorFile = "training_state.safetensors";

    public static void Save(string outDir, TrainingCheckpoint state, LlamaModel model, LoraConfig lora,
        IReadOnlyDictionary<string, Tensor> optimizerTensors, JsonNode optimizerScalars, int keep)
    {
        string dir = Path.Combine(outDir, Prefix + state.Step);
        AtomicFile.WriteDirectory(dir, temp =>
        {
            PeftAdapterFiles.Save(Path.Combine(temp, "adapter"), model, lora);
            var tensors = new Dictionary<string, Tensor>(optimizerTensors.Select(kv => KeyValuePair.Create("optimizer." + kv.Key, kv.Value)))
            {
                ["rng_state"] = get_rng_state(),
            };
            SafetensorsFile.Write(Path.Combine(temp, TensorFile), tensors);
            var json = new JsonObject
            {
                ["step"] = state.Step, ["epoch"] = state.Epoch, ["next_batch"] = state.NextBatch, ["last_loss"] = state.LastLoss,
                ["optimizer"] = optimizerScalars.DeepClone(),
            };
            AtomicFile.WriteAllText(Path.Combine(temp, StateFile), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        });
        foreach (var old in List(outDir).SkipLast(keep)) Directory.Delete(old.Path, recursive: true);
    }

    /// <summary>Checkpoint folders in <paramref name="outDir"/>, oldest first.</summary>
    public static List<(int Step, string Path)> List(string outDir) =>
        !Directory.Exists(outDir) ? []
        : Directory.GetDirectories(outDir, Prefix + "*")
            .Select(d => (Ok: int.TryParse(Path.GetFileName(d)[Prefix.Length..], out int s), Step: s, Path: d))
            .Where(x => x.Ok && File.Exists(Path.Combine(x.Path, StateFile)))
            .OrderBy(x => x.Step).Select(x => (x.Step, x.Path)).ToList();

    public sealed record Loaded(TrainingCheckpoint State, string AdapterDir, Dictionary<string, Tensor> OptimizerTensors, JsonNode OptimizerScalars, Tensor RngState);

    public static Loaded Load(string dir)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, StateFile)))
            ?? throw new UserInputException($"{dir}: {StateFile} is empty");
        var state = new TrainingCheckpoint(json["step"]!.GetValue<int>(), json["epoch"]!.GetValue<int>(),
            json["next_batch"]!.GetValue<int>(), json["last_loss"]!.GetValue<double>());
        using var file = new SafetensorsFile(Path.Combine(dir, TensorFile));
        var optimizer = new Dictionary<string, Tensor>();
        foreach (var e in file.Entries.Where(e => e.Name.StartsWith("optimizer.", StringComparison.Ordinal)))
            optimizer[e.Name["optimizer.".Length..]] = file.Read(e.Name);
        return new Loaded(state, Path.Combine(dir, "adapter"), optimizer, json["optimizer"]!.DeepClone(), file.Read("rng_state"));
    }
}
