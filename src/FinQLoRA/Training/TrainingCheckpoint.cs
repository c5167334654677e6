using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.IO;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Models.Families;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>
/// <c>checkpoint-&lt;step&gt;/</c>: everything a run needs to continue bit-identically — the adapter (PEFT files),
/// optimizer tensors and scalars, the schedule's step, the random state (dropout) and the data position
/// (epoch and next batch; the batch order itself is a pure function of seed and epoch). Written as a whole
/// folder under a temp name and renamed, so a kill mid-save leaves the previous checkpoint intact.
/// With several data-parallel ranks, rank 0 writes the folder and adds one <see cref="RankLocalState"/> file per other
/// rank; <see cref="WorldSize"/> records how many ranks the run had (a resume must use the same number).
/// </summary>
public sealed record TrainingCheckpoint(int Step, int Epoch, int NextBatch, double LastLoss, int WorldSize = 1)
{
    public const string Prefix = "checkpoint-";
    private const string StateFile = "trainer_state.json";
    private const string TensorFile = "training_state.safetensors";
    /// <summary>FFA-LoRA, which adapter_config.json has no key for: a checkpoint without it was trained with A.</summary>
    private const string LoraAFrozenKey = "lora_a_frozen";

    /// <param name="otherRanks">the <see cref="RankLocalState"/> tensors of ranks 1..WorldSize−1, in rank order</param>
    public static void Save(string outDir, TrainingCheckpoint state, DecoderModel model, LoraConfig lora,
        IReadOnlyDictionary<string, Tensor> optimizerTensors, JsonNode optimizerScalars, int keep,
        IReadOnlyList<IReadOnlyDictionary<string, Tensor>>? otherRanks = null, JsonNode? best = null, JsonNode? privacy = null)
    {
        otherRanks ??= [];
        if (otherRanks.Count != state.WorldSize - 1)
            throw new ArgumentException($"a checkpoint of {state.WorldSize} ranks needs the state of {state.WorldSize - 1} other ranks, got {otherRanks.Count}", nameof(otherRanks));
        string dir = Path.Combine(outDir, Prefix + state.Step);
        AtomicFile.WriteDirectory(dir, temp =>
        {
            // fp32 whatever adapter_dtype says: a resumed run continues from the exact master weights
            PeftAdapterFiles.Save(Path.Combine(temp, "adapter"), model, lora);
            var tensors = new Dictionary<string, Tensor>(optimizerTensors.Select(kv => KeyValuePair.Create("optimizer." + kv.Key, kv.Value)))
            {
                [RankLocalState.RngKey] = get_rng_state(),
            };
            SafetensorsFile.Write(Path.Combine(temp, TensorFile), tensors);
            for (int rank = 1; rank < state.WorldSize; rank++)
                SafetensorsFile.Write(Path.Combine(temp, RankLocalState.FileName(rank)), otherRanks[rank - 1]);
            var json = new JsonObject
            {
                ["step"] = state.Step, ["epoch"] = state.Epoch, ["next_batch"] = state.NextBatch, ["last_loss"] = state.LastLoss,
                ["world_size"] = state.WorldSize,
                [LoraAFrozenKey] = lora.FreezeA,
                ["optimizer"] = optimizerScalars.DeepClone(),
                ["best"] = best?.DeepClone(),
                ["privacy"] = privacy?.DeepClone(),
            };
            AtomicFile.WriteAllText(Path.Combine(temp, StateFile), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        });
    }

    /// <summary>Removes all but the newest <paramref name="keep"/> checkpoints (folders this run wrote).</summary>
    public static void Prune(string outDir, int keep)
    {
        foreach (var old in List(outDir).SkipLast(keep))
            if (OutputMarker.IsMarked(old.Path)) Directory.Delete(old.Path, recursive: true);
    }

    /// <summary>Refuses to resume a checkpoint whose adapter has another shape than <paramref name="wanted"/> (its target
    /// names resolved against the model's <paramref name="family"/>, as the saved adapter lists them).</summary>
    public static void CheckSameAdapter(string dir, LoraConfig wanted, ModelFamily family)
    {
        string file = Path.Combine(dir, "adapter", "adapter_config.json");
        JsonObject? o;
        try { o = JsonNode.Parse(File.ReadAllText(file)) as JsonObject; }
        catch (Exception e) when (e is IOException or JsonException) { return; } // damaged: the loader reports it and falls back
        if (o == null) return;
        void Same(string key, string configKey, object? have, object want)
        {
            if (have != null && !Equals(have, want))
                throw UserInputException.About($"resume: {file} has {key} = {have} but the run asks for {configKey} = {want}; resume with the run's settings or start a new {new ConfigField("out")}");
        }
        Same("r", "rank", o["r"]?.GetValue<int>(), wanted.Rank);
        Same("lora_alpha", "alpha", o["lora_alpha"]?.GetValue<double>(), wanted.Alpha);
        Same("use_dora", "use_dora", o["use_dora"]?.GetValue<bool>(), wanted.UseDora);
        Same("use_rslora", "use_rslora", o["use_rslora"]?.GetValue<bool>(), wanted.UseRsLora);
        var state = StateOf(dir); // null when damaged: Load reports it
        bool? frozen = state is null ? null : state[LoraAFrozenKey]?.GetValueKind() == JsonValueKind.True;
        if (frozen != null && frozen != wanted.FreezeA)
            throw UserInputException.About($"resume: {Path.Combine(dir, StateFile)} has {LoraAFrozenKey} = {(frozen.Value ? "true" : "false")} but the run asks for {new ConfigField("lora_a_frozen")} {(wanted.FreezeA ? "true" : "false")}; the optimizer state covers {(frozen.Value ? "B alone" : "A and B")}: resume with the run's settings or start a new {new ConfigField("out")}");
        if (o["target_modules"] is JsonArray targets)
        {
            var have = targets.Select(t => t?.GetValue<string>() ?? "").Order().ToList();
            var want = LoraTargets.Names(wanted.ResolvedTargets(family)).Order().ToList();
            if (!have.SequenceEqual(want))
                throw UserInputException.About($"resume: {file} has target_modules = {string.Join(",", have)} but the run asks for targets = {string.Join(",", want)}; resume with the run's settings or start a new {new ConfigField("out")}");
        }
    }

    /// <summary>Checkpoint folders in <paramref name="outDir"/>, oldest first.</summary>
    public static List<(int Step, string Path)> List(string outDir) =>
        !Directory.Exists(outDir) ? []
        : Directory.GetDirectories(outDir, Prefix + "*")
            .Select(d => (Ok: int.TryParse(Path.GetFileName(d)[Prefix.Length..], out int s), Step: s, Path: d))
            .Where(x => x.Ok && File.Exists(Path.Combine(x.Path, StateFile)))
            .OrderBy(x => x.Step).Select(x => (x.Step, x.Path)).ToList();

    /// <param name="RankParameters">adapter parameter values that replace the shared adapter's on this rank (empty
    /// when the ranks share one adapter: rank 0, or an optimizer with replicated state)</param>
    public sealed record Loaded(TrainingCheckpoint State, string AdapterDir, Dictionary<string, Tensor> OptimizerTensors, JsonNode OptimizerScalars, Tensor RngState,
        Dictionary<string, Tensor> RankParameters) : IDisposable
    {
        /// <summary>The best evaluation so far when the checkpoint was written (<see cref="BestCheckpoint"/>).</summary>
        public JsonNode? Best { get; init; }

        public void Dispose()
        {
            foreach (var t in OptimizerTensors.Values.Concat(RankParameters.Values)) t.Dispose();
            RngState.Dispose();
        }
    }

    /// <summary>The privacy settings a checkpoint was trained with (<see cref="Privacy.PrivacyPlan.Settings"/>); null
    /// without DP, or when the state file cannot be read (the loader reports that).</summary>
    public static JsonObject? PrivacyOf(string dir) => StateOf(dir)?["privacy"] as JsonObject;

    /// <summary>A checkpoint's trainer_state.json; null when it cannot be read (damaged: <see cref="Load"/> reports it).</summary>
    private static JsonObject? StateOf(string dir)
    {
        try { return JsonNode.Parse(File.ReadAllText(Path.Combine(dir, StateFile))) as JsonObject; }
        catch (Exception e) when (e is IOException or JsonException) { return null; }
    }

    /// <summary>Loads what rank <paramref name="rank"/> of a job of <paramref name="worldSize"/> ranks resumes from: the shared
    /// adapter and scalars, and its own random state, optimizer tensors and parameters where the checkpoint has them.</summary>
    public static Loaded Load(string dir, int rank = 0, int worldSize = 1)
    {
        string stateFile = Path.Combine(dir, StateFile);
        JsonNode json;
        TrainingCheckpoint state;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(stateFile)) ?? throw new UserInputException($"{stateFile}: empty");
            state = new TrainingCheckpoint(json["step"]!.GetValue<int>(), json["epoch"]!.GetValue<int>(),
                json["next_batch"]!.GetValue<int>(), json["last_loss"]!.GetValue<double>(), json["world_size"]?.GetValue<int>() ?? 1);
            if (json["optimizer"] is null) throw new UserInputException($"{stateFile}: no optimizer state");
        }
        catch (Exception e) when (e is JsonException or NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new UserInputException($"{stateFile}: damaged ({e.Message})");
        }
        if (state.WorldSize != worldSize)
            throw new UserInputException($"{dir}: written by a run of {state.WorldSize} rank(s), resumed with {worldSize}; resume with the same number of ranks (mpirun -np {state.WorldSize}), because the data position counts global batches and the optimizer state may be per rank");
        var optimizer = new Dictionary<string, Tensor>();
        Tensor rng;
        using (var file = new SafetensorsFile(Path.Combine(dir, TensorFile)))
        {
            foreach (var e in file.Entries.Where(e => e.Name.StartsWith(RankLocalState.OptimizerPrefix, StringComparison.Ordinal)))
                optimizer[e.Name[RankLocalState.OptimizerPrefix.Length..]] = file.Read(e.Name);
            rng = file.Read(RankLocalState.RngKey);
        }
        var parameters = new Dictionary<string, Tensor>();
        if (rank > 0)
        {
            string path = Path.Combine(dir, RankLocalState.FileName(rank));
            if (!File.Exists(path))
                throw new UserInputException($"{path} is missing: the checkpoint is incomplete; delete {dir} to resume from the one before");
            using var own = new SafetensorsFile(path);
            rng.Dispose();
            rng = own.Read(RankLocalState.RngKey);
            var ownOptimizer = own.Entries.Where(e => e.Name.StartsWith(RankLocalState.OptimizerPrefix, StringComparison.Ordinal)).ToList();
            if (ownOptimizer.Count > 0)
            {
                foreach (var t in optimizer.Values) t.Dispose();
                optimizer.Clear();
                foreach (var e in ownOptimizer) optimizer[e.Name[RankLocalState.OptimizerPrefix.Length..]] = own.Read(e.Name);
            }
            foreach (var e in own.Entries.Where(e => e.Name.StartsWith(RankLocalState.ParameterPrefix, StringComparison.Ordinal)))
                parameters[e.Name[RankLocalState.ParameterPrefix.Length..]] = own.Read(e.Name);
        }
        return new Loaded(state, Path.Combine(dir, "adapter"), optimizer, json["optimizer"]!.DeepClone(), rng, parameters) { Best = json["best"]?.DeepClone() };
    }
}
