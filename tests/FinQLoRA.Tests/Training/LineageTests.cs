using System.Text.Json.Nodes;
using FinQLoRA.IO;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Training;

/// <summary>run.json and the adapter's lineage.json hash every input and adapter file; verify catches a one-byte change.</summary>
public sealed class LineageTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(3);

    [Fact]
    public void AFreshRunVerifiesAndAOneByteChangeIsNamed()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string config = Path.Combine(dir.Path, "run.yaml");
        File.WriteAllText(config, "rank: 4\nlr: 1e-3\nmax_steps: 3\nwarmup_steps: 1\nsave_every: 0\ndtype: f32\nbits: 4\n");
        string run = Path.Combine(dir.Path, "run");
        var r = CliProcess.RunSeparately(Limit, "train", "--config", config, "--model", SeededLlama.Folder, "--data", data, "--out", run);
        Assert.True(r.ExitCode == 0, r.Stderr);

        var record = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "run.json")))!["lineage"]!;
        Assert.Equal(FileHashes.Sha256(data), record["inputs"]!["data"]![0]!["sha256"]!.GetValue<string>());
        Assert.Equal(FileHashes.Sha256(config), record["inputs"]!["config"]![0]!["sha256"]!.GetValue<string>());
        Assert.Contains(record["inputs"]!["model"]!.AsArray(), f => f!["path"]!.GetValue<string>().EndsWith("model.safetensors"));
        Assert.Contains("train", record["command_line"]!.AsArray().Select(a => a!.GetValue<string>()));
        string adapter = Path.Combine(run, "adapter");
        foreach (string f in new[] { "adapter_model.safetensors", "adapter_config.json", "README.md", "lineage.json" })
            Assert.Equal(FileHashes.Sha256(Path.Combine(adapter, f)), record["adapter_files"]![f]!.GetValue<string>());
        string card = File.ReadAllText(Path.Combine(adapter, "README.md"));
        Assert.Contains("library_name: peft", card);
        Assert.Contains(FileHashes.Sha256(data), card);

        Assert.Equal(0, CliProcess.RunSeparately(Limit, "verify", run).ExitCode);
        Assert.Equal(0, CliProcess.RunSeparately(Limit, "verify", adapter).ExitCode); // a copied adapter carries its record

        // one byte of the adapter
        string weights = Path.Combine(adapter, "adapter_model.safetensors");
        byte[] bytes = File.ReadAllBytes(weights);
        bytes[^1] ^= 1;
        File.WriteAllBytes(weights, bytes);
        foreach (string target in new[] { run, adapter })
        {
            var bad = CliProcess.RunSeparately(Limit, "verify", target);
            Assert.Equal(1, bad.ExitCode);
            Assert.Contains("adapter_model.safetensors", bad.Stderr);
        }
        bytes[^1] ^= 1;
        File.WriteAllBytes(weights, bytes);

        // one byte of the training data
        File.AppendAllText(data, " ");
        var changed = CliProcess.RunSeparately(Limit, "verify", run);
        Assert.Equal(1, changed.ExitCode);
        Assert.Contains("train.jsonl", changed.Stderr);
        // an input that is gone is skipped, not a failure
        File.Delete(data);
        Assert.Equal(0, CliProcess.RunSeparately(Limit, "verify", run).ExitCode);
    }
}
