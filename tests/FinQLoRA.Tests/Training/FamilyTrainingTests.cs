using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Recipes;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Training;

/// <summary>
/// QLoRA training on every family (issue 22), through <see cref="FineTuneRecipe"/> (what <c>finqlora train</c> runs) on
/// the family's seeded model: 4-bit NF4 base, r 4 on all-linear (Phi-3: its fused qkv_proj and gate_up_proj), sample
/// packing and LoRA dropout, 20 steps. A run interrupted as Ctrl-C does (a checkpoint after the step in progress) and
/// resumed ends with the uninterrupted run's adapter byte for byte; <c>merge</c> of that adapter onto the 4-bit base
/// gives the logits of the base with the adapter.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class FamilyTrainingTests
{
    private const int Steps = 20;

    private static TrainConfig Config(string model, string data, string outDir) => new()
    {
        Model = model, Data = data, Out = outDir, Bits = 4, Quant = FourBitType.Nf4, DoubleQuant = true,
        Rank = 4, Alpha = 8, Dropout = 0.1, Targets = ["all-linear"], Packing = true,
        MaxSteps = Steps, BatchSize = 2, GradAccum = 1, MaxSeqLen = 48, Lr = 5e-3, WarmupSteps = 2,
        SaveEvery = 0, KeepCheckpoints = 2, LogEvery = 1, Seed = 7, Dtype = ScalarType.Float32,
    };

    [Theory]
    [MemberData(nameof(SeededFamilies.Names), MemberType = typeof(SeededFamilies))]
    public void InterruptedAndResumedRunEndsWithTheSameAdapterAndItsMergeGivesItsLogits(string family)
    {
        using var dir = new TempFolder();
        string model = SeededFamilies.Write(dir.PathOf("model"), family);
        string data = TrainingRun.WriteData(dir.Path);

        string straight = dir.PathOf("straight");
        var result = FineTuneRecipe.Run(new FineTuneOptions { Config = Config(model, data, straight) });
        Assert.Equal(Steps, result.Steps);
        var metrics = TrainingRun.Metrics(straight);
        Assert.True(metrics[^1]["loss"]!.GetValue<double>() < metrics[0]["loss"]!.GetValue<double>(), $"{family}: the loss did not fall");
        var saved = JsonNode.Parse(File.ReadAllText(Path.Combine(straight, "adapter", PeftAdapterConfig.FileName)))!.AsObject();
        Assert.Equal(LoraTargets.Names(SeededFamilies.Config(family).Family.Projections),
            saved["target_modules"]!.AsArray().Select(t => t!.GetValue<string>()));

        // Interrupted as Ctrl-C does: the stop request lands while step 10 is reported; the run checkpoints after step 11.
        string interrupted = dir.PathOf("interrupted");
        using (var stop = new CancellationTokenSource())
        {
            var options = new FineTuneOptions
            {
                Config = Config(model, data, interrupted), Stop = stop.Token,
                Progress = line => { if (line.StartsWith($"step 10/{Steps} ", StringComparison.Ordinal)) stop.Cancel(); },
            };
            var e = Assert.Throws<TrainingInterruptedException>(() => FineTuneRecipe.Run(options));
            Assert.Equal(11, e.Step);
        }
        Assert.False(Directory.Exists(Path.Combine(interrupted, "adapter")));
        var resumed = FineTuneRecipe.Run(new FineTuneOptions { Config = Config(model, data, interrupted) with { Resume = true } });
        Assert.Equal(Steps, resumed.Steps);
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "adapter", PeftAdapterFiles.WeightsFileName)),
            File.ReadAllBytes(Path.Combine(interrupted, "adapter", PeftAdapterFiles.WeightsFileName)));

        // merge (HF) onto the 4-bit base it was trained on: a dense folder with the adapted model's logits
        string merged = dir.PathOf("merged");
        AdapterMerge.Run(new AdapterMergeOptions
        {
            ModelPath = model, AdapterDir = Path.Combine(straight, "adapter"), OutPath = merged, DType = ScalarType.Float32, Bits = 4,
        });
        var fp32 = new ModelLoadOptions { DType = ScalarType.Float32 };
        using var adapted = ModelLoading.LoadModel(model, fp32.WithBits(4, FourBitType.Nf4, doubleQuant: true));
        using var baseLogits = LoraTestKit.Logits(adapted);
        PeftAdapterFiles.Load(Path.Combine(straight, "adapter"), adapted);
        using var expected = LoraTestKit.Logits(adapted);
        Assert.True(TensorAssert.MaxDiff(expected, baseLogits) > 1e-3, $"{family}: the trained adapter changes nothing");
        using var mergedModel = ModelLoading.LoadModel(merged, fp32);
        Assert.All(mergedModel.Layers.SelectMany(l => mergedModel.Config.Family.Projections.Select(k => l[k])), m => Assert.IsType<DenseLinear>(m));
        using var logits = LoraTestKit.Logits(mergedModel);
        TensorAssert.MaxDiffAtMost(expected, logits, 1e-4, $"{family}: merged vs 4-bit base + adapter");
    }

    /// <summary><c>finqlora train</c> on Phi-3 with FinLoRA's default targets (q_proj, k_proj, v_proj: together the rows
    /// of Phi-3's qkv_proj) adapts qkv_proj and says so in adapter_config.json as PEFT would; a part named alone
    /// (q_proj) has no place in Phi-3 and is refused before the model loads, in one line naming the family's modules.</summary>
    [Fact]
    public void CliTrainsTheDefaultTargetsAsQkvAndRefusesAPartAlone()
    {
        using var dir = new TempFolder();
        string model = SeededFamilies.Write(dir.PathOf("model"), "phi3");
        string data = TrainingRun.WriteData(dir.Path);
        var ok = CliProcess.RunSeparately(TrainingRun.Limit, "train", "--model", model, "--data", data, "--out", dir.PathOf("ok"), "--max-steps", "2");
        Assert.True(ok.ExitCode == 0, ok.Stderr);
        var written = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.PathOf("ok"), "adapter", "adapter_config.json")))!["target_modules"]!.AsArray();
        Assert.Equal(["qkv_proj"], written.Select(t => t!.GetValue<string>()));

        var r = CliProcess.RunSeparately(TrainingRun.Limit, "train", "--model", model, "--data", data, "--out", dir.PathOf("out"), "--max-steps", "2", "--targets", "q_proj");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Stdout);
        Assert.Contains("targets: Phi3ForCausalLM (phi3) models have no q_proj; their projections are qkv_proj, o_proj, gate_up_proj, down_proj (or \"all-linear\" for all of them)", r.Stderr);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.False(Directory.Exists(dir.PathOf("out")));
    }
}
