using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Tests.Distributed;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Training;

/// <summary>Runs <c>finqlora train</c> (the built CLI beside the tests) on one process or under <c>mpirun -np 2</c>, on
/// a seeded Llama with stories260K's shapes (no ../shared) with a small synthetic sentiment file, and reads back what it wrote.</summary>
public static class TrainingRun
{
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(120);

    /// <summary>32 short context/target lines (deterministic), enough for several epochs of batches of 4.</summary>
    public static string WriteData(string dir)
    {
        string[] subjects = ["Shares of Acme", "Revenue at Globex", "The bank's margin", "Initech stock", "Quarterly profit", "The retailer's outlook", "Oil futures", "The chip maker"];
        (string Verb, string Label)[] moves = [("jumped after strong results", "positive"), ("fell on weak guidance", "negative"), ("was unchanged in quiet trading", "neutral"), ("beat estimates", "positive")];
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, "train.jsonl");
        var lines = new List<string>();
        for (int i = 0; i < 32; i++)
        {
            var (verb, label) = moves[(i * 3 + i / 8) % moves.Length];
            var o = new JsonObject { ["context"] = $"Sentiment of: {subjects[i % subjects.Length]} {verb}.\nAnswer: ", ["target"] = label };
            lines.Add(o.ToJsonString());
        }
        File.WriteAllLines(path, lines);
        return path;
    }

    /// <summary>fp32 compute over a 16-bit base: no quantization or bf16 rounding between the two layouts.</summary>
    public static List<string> Arguments(string data, string outDir, int batchSize, int steps, params string[] extra) =>
    CliProcess.Arguments([
        "train", "--model", SeededLlama.Folder, "--data", data, "--out", outDir,
        "--batch-size", batchSize.ToString(CultureInfo.InvariantCulture), "--max-steps", steps.ToString(CultureInfo.InvariantCulture),
        "--dtype", "f32", "--bits", "16", "--seed", "7", "--lr", "1e-3", "--warmup-steps", "2", "--max-seq-len", "48", .. extra,
    ]);

    public static MpiJob Single(List<string> arguments) => MpiJob.RunProcess(CliProcess.Dotnet, arguments, Limit);

    public static MpiJob TwoRanks(List<string> arguments, IReadOnlyDictionary<string, string>? environment = null) =>
        MpiJob.Run(2, CliProcess.Dotnet, arguments, Limit, environment);

    public static void AssertSucceeded(MpiJob job) => Assert.True(job.ExitCode == 0, $"exit code {job.ExitCode}:\n{job.Output}");

    /// <summary>Every tensor of an adapter_model.safetensors, as float arrays.</summary>
    public static Dictionary<string, float[]> Adapter(string runDir)
    {
        using var file = new SafetensorsFile(Path.Combine(runDir, "adapter", "adapter_model.safetensors"));
        var tensors = new Dictionary<string, float[]>();
        foreach (var entry in file.Entries)
        {
            using var t = file.Read(entry.Name);
            tensors[entry.Name] = t.to_type(TorchSharp.torch.ScalarType.Float32).data<float>().ToArray();
        }
        return tensors;
    }

    /// <summary>metrics.jsonl, one object per line.</summary>
    public static List<JsonObject> Metrics(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    /// <summary>
    /// Runs <c>finqlora train</c> with <paramref name="arguments"/>, kills it with SIGKILL (no chance to clean up) as soon
    /// as <paramref name="checkpoint"/> (e.g. checkpoint-4) has its trainer_state.json, checks that no final adapter was
    /// written, then runs it again with --resume to the end.
    /// </summary>
    public static void KillAfterCheckpointThenResume(string[] arguments, string outDir, string checkpoint, TimeSpan limit)
    {
        using (var p = CliProcess.Start(arguments))
        {
            var deadline = DateTime.UtcNow + limit;
            while (!File.Exists(Path.Combine(outDir, checkpoint, "trainer_state.json")) && !p.HasExited && DateTime.UtcNow < deadline)
                Thread.Sleep(10);
            Assert.False(p.HasExited, "the run finished before it could be killed");
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        Assert.False(File.Exists(Path.Combine(outDir, "adapter", "adapter_model.safetensors")));
        var (code, output) = CliProcess.Run(limit, [.. arguments, "--resume"]);
        Assert.True(code == 0, output);
        Assert.Contains("resuming from", output);
    }
}
