using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.IO;

namespace FinQLoRA.Training;

/// <summary>run.json: the config, versions, timings, final metrics, peak memory and device-hours of a run.</summary>
public static class RunRecord
{
    public const string FileName = "run.json";

    /// <summary>A run.json (or any FinQLoRA JSON record) as an object; a damaged file is a one-line error naming it.</summary>
    public static JsonObject Read(string path)
    {
        try { return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new UserInputException($"{path}: expected a JSON object"); }
        catch (JsonException e) { throw new UserInputException($"{path}: not valid JSON ({e.Message})"); }
    }

    /// <summary>The run.json that <c>finqlora train</c> wrote beside an adapter (<c>out/adapter</c> → <c>out/run.json</c>),
    /// or null when the adapter came from elsewhere or the record cannot be read.</summary>
    public static JsonObject? ForAdapter(string adapterDir)
    {
        string path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(adapterDir).TrimEnd('/'))!, FileName);
        if (!File.Exists(path)) return null;
        try { return Read(path); }
        catch (UserInputException) { return null; }
    }

    /// <param name="lineage">hashes of the inputs and of the adapter's files (<see cref="RunLineage"/>)</param>
    /// <param name="privacy">the (ε, δ) a differentially private run spent and the settings that spent it</param>
    /// <param name="warmupSteps">the warm-up the run used (<see cref="TrainingPlan"/>: the configured one, clamped to the run)</param>
    public static void Write(TrainConfig config, TrainResult result, string path, int worldSize, JsonObject? lineage = null,
        EvalResult? finalEval = null, BestCheckpoint? best = null, int? warmupSteps = null, JsonObject? privacy = null)
    {
        var o = new JsonObject
        {
            ["config"] = config.ToJson(),
            ["versions"] = new JsonObject
            {
                ["finqlora"] = Runtime.BuildInfo.Version,
                ["commit"] = Runtime.BuildInfo.Commit,
                ["libtorch"] = TorchSharp.torch.__version__,
                ["dotnet"] = Environment.Version.ToString(),
                ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
            },
            ["world_size"] = worldSize,
            ["steps"] = result.Steps,
            ["effective_warmup_steps"] = warmupSteps ?? config.WarmupSteps,
            ["final_loss"] = result.FinalLoss,
            ["eval_loss"] = result.EvalLoss,
            ["load_seconds"] = Math.Round(result.LoadSeconds, 3),
            ["train_seconds"] = Math.Round(result.TrainSeconds, 3),
            ["wall_seconds"] = Math.Round(result.WallSeconds, 3),
            ["tokens_seen"] = result.TokensSeen,
            ["tokens_per_second"] = Math.Round(result.TokensPerSecond, 1),
            ["peak_rss_bytes"] = result.PeakRssBytes,
            ["device_hours"] = Math.Round(result.TrainSeconds * worldSize / 3600.0, 6),
            ["adapter_bytes"] = result.AdapterBytes,
            ["adapter_dir"] = result.AdapterDir,
            ["final_eval"] = finalEval?.ToJson(),
            ["best"] = best?.ToJson(),
            ["lineage"] = lineage?.DeepClone(),
        };
        if (privacy != null) o["privacy"] = privacy.DeepClone();
        AtomicFile.WriteAllText(path, o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
