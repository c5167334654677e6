using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Recipes;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Cli;
using FinQLoRA.Tests.Support;
using FinQLoRA.Tests.Training;
using FinQLoRA.Training;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Privacy;

/// <summary>
/// FFA-LoRA (<c>lora_a_frozen</c>): A is drawn from the run's seed exactly as an ordinary run draws it and then never
/// changes; only B trains, the optimizer keeps no state for A, the trainable count is B's, the saved adapter still holds
/// A, and a run interrupted and resumed keeps A bit-identical and ends with the straight run's adapter.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class FrozenATrainingTests
{
    private const int Steps = 6;

    private static TrainConfig Config(string data, string outDir) => new()
    {
        Model = SeededLlama.Folder, Data = data, Out = outDir, Bits = 16, Dtype = ScalarType.Float32,
        Rank = 4, Alpha = 8, Dropout = 0.1, MaxSteps = Steps, BatchSize = 4, MaxSeqLen = 48, Lr = 5e-3, WarmupSteps = 1,
        SaveEvery = 3, LogEvery = 1, Seed = 7, LoraAFrozen = true,
    };

    /// <summary>A as a fresh ordinary adapter of the same seed has it (LoraInjector on the same base), by PEFT key, and the
    /// number of B parameters (what FFA-LoRA trains).</summary>
    private static (Dictionary<string, Tensor> A, long BParameters) InitialA(TrainConfig c)
    {
        using var model = SeededLlama.Load();
        LoraInjector.Apply(model, c.ToLoraConfig() with { FreezeA = false }, c.Seed);
        var a = new Dictionary<string, Tensor>();
        long b = 0;
        foreach (var w in LoraInjector.Wrapped(model))
        {
            var adapter = w.Lora.Adapters[LoraLinear.DefaultAdapter];
            a[PeftAdapterKey.Canonical(w.ModulePath, "lora_A.weight")] = adapter.A.detach().clone();
            b += adapter.B.numel();
        }
        return (a, b);
    }

    [Fact]
    public void AStaysAtItsSeededInitBTrainsAndAResumedRunKeepsBoth()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string straight = dir.PathOf("straight");
        var lines = new List<string>();
        var config = Config(data, straight);
        FineTuneRecipe.Run(new FineTuneOptions { Config = config, Progress = lines.Add });
        var (initialA, bParameters) = InitialA(config);

        // the trainable count is B's alone
        string trainable = Assert.Single(lines, l => l.StartsWith("trainable params: ", StringComparison.Ordinal));
        Assert.StartsWith($"trainable params: {bParameters:N0} ||", trainable, StringComparison.Ordinal);

        using (var file = new SafetensorsFile(Path.Combine(straight, "adapter", PeftAdapterFiles.WeightsFileName)))
        {
            Assert.Equal(initialA.Keys.Order(), file.Entries.Select(e => e.Name).Where(n => n.EndsWith("lora_A.weight", StringComparison.Ordinal)).Order());
            foreach (var (name, a) in initialA)
            {
                using var saved = file.Read(name);
                TensorAssert.BitIdentical(a, saved, name);
            }
            foreach (var e in file.Entries.Where(e => e.Name.EndsWith("lora_B.weight", StringComparison.Ordinal)))
            {
                using var b = file.Read(e.Name);
                Assert.True(TensorAssert.MaxAbs(b) > 0, $"{e.Name} did not train");
            }
        }

        // the optimizer never saw A: its checkpointed state has B's moments only
        using (var state = new SafetensorsFile(Path.Combine(straight, "checkpoint-3", "training_state.safetensors")))
        {
            var optimizer = state.Entries.Select(e => e.Name).Where(n => n.StartsWith("optimizer.", StringComparison.Ordinal)).ToList();
            Assert.Contains(optimizer, n => n.Contains("lora_B", StringComparison.Ordinal));
            Assert.DoesNotContain(optimizer, n => n.Contains("lora_A", StringComparison.Ordinal));
        }
        Assert.True(JsonNode.Parse(File.ReadAllText(Path.Combine(straight, "checkpoint-3", "trainer_state.json")))!["lora_a_frozen"]!.GetValue<bool>());

        // recorded where FinQLoRA records the run (PEFT's adapter_config.json has no key for it)
        var lineage = JsonNode.Parse(File.ReadAllText(Path.Combine(straight, "adapter", RunLineage.FileName)))!;
        Assert.True(lineage["adapter"]!["lora_a_frozen"]!.GetValue<bool>());
        Assert.Equal(7, lineage["adapter"]!["lora_a_seed"]!.GetValue<long>());
        Assert.True(RunRecord.Read(Path.Combine(straight, RunRecord.FileName))["config"]!["lora_a_frozen"]!.GetValue<bool>());
        Assert.Contains("FFA-LoRA", File.ReadAllText(Path.Combine(straight, "adapter", ModelCard.FileName)));
        Assert.Null(JsonNode.Parse(File.ReadAllText(Path.Combine(straight, "adapter", PeftAdapterConfig.FileName)))!["lora_a_frozen"]);

        // interrupted after step 3, then resumed: a resume that would train A is refused, the right one ends identical
        string interrupted = dir.PathOf("interrupted");
        using (var stop = new CancellationTokenSource())
        {
            var options = new FineTuneOptions
            {
                Config = Config(data, interrupted), Stop = stop.Token,
                Progress = line => { if (line.StartsWith($"step 2/{Steps} ", StringComparison.Ordinal)) stop.Cancel(); },
            };
            Assert.Equal(3, Assert.Throws<TrainingInterruptedException>(() => FineTuneRecipe.Run(options)).Step);
        }
        var refused = Assert.Throws<UserInputException>(() => FineTuneRecipe.Run(new FineTuneOptions { Config = Config(data, interrupted) with { Resume = true, LoraAFrozen = false } }));
        Assert.Contains("lora_a_frozen", refused.Fields);
        FineTuneRecipe.Run(new FineTuneOptions { Config = Config(data, interrupted) with { Resume = true } });
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "adapter", PeftAdapterFiles.WeightsFileName)),
            File.ReadAllBytes(Path.Combine(interrupted, "adapter", PeftAdapterFiles.WeightsFileName)));
        foreach (var a in initialA.Values) a.Dispose();
    }

    [Fact]
    public void AFrozenAdapterLeavesAOutOfTheTrainableSetAndOutOfBackwardButNotOutOfItsFile()
    {
        using var dir = new TempFolder();
        using var model = SeededLlama.Load();
        var summary = LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, FreezeA = true }, seed: 3);
        var wrapped = LoraInjector.Wrapped(model).ToList();
        var trainable = LoraInjector.AdapterParameters(model).ToList();
        Assert.Equal(wrapped.Count, trainable.Count);
        Assert.All(trainable, p => Assert.EndsWith("lora_B.weight", p.Name, StringComparison.Ordinal));
        long bParameters = wrapped.Sum(w => w.Lora.Adapters[LoraLinear.DefaultAdapter].B.numel());
        Assert.Equal(bParameters, summary.TrainableParameters);
        Assert.Equal(bParameters, model.CountParameters().Trainable);

        LoraTestKit.Randomize(model, LoraLinear.DefaultAdapter, seed: 5); // B ≠ 0, so A's gradient would not be zero
        model.train();
        using (var scope = NewDisposeScope())
        {
            using var ids = LoraTestKit.Ids();
            model.Forward(ids).square().mean().backward();
        }
        foreach (var w in wrapped)
        {
            var a = w.Lora.Adapters[LoraLinear.DefaultAdapter];
            Assert.False(a.A.requires_grad);
            Assert.Null(a.A.grad);
            Assert.NotNull(a.B.grad);
        }

        var info = PeftAdapterFiles.Save(dir.PathOf("adapter"), model, new LoraConfig { Rank = 4, Alpha = 8, FreezeA = true });
        using var file = new SafetensorsFile(Path.Combine(info.Directory, PeftAdapterFiles.WeightsFileName));
        Assert.Equal(2 * wrapped.Count, file.Entries.Count());
        Assert.Equal(wrapped.Count, file.Entries.Count(e => e.Name.EndsWith("lora_A.weight", StringComparison.Ordinal)));
    }

    [Fact]
    public void FrozenAWithDoraIsRefusedNamingBothKeys()
    {
        var e = Assert.Throws<UserInputException>(() => TrainConfig.FromValues(new Dictionary<string, string>
        {
            ["model"] = "m", ["data"] = "d.jsonl", ["use_dora"] = "true", ["lora_a_frozen"] = "true",
        }, "test.yaml"));
        Assert.Equal(["lora_a_frozen", "use_dora"], e.Fields);

        string line = CliProcess.AssertOneLineError(InProcessCli.Run("train", "--model", "m", "--data", "d.jsonl", "--use-dora", "true", "--lora-a-frozen", "true"));
        Assert.Contains("--lora-a-frozen true with --use-dora true is refused", line);
        Assert.Contains("lora_a_frozen = 'maybe'", CliProcess.AssertOneLineError(InProcessCli.Run("train", "--model", "m", "--data", "d.jsonl", "--lora-a-frozen", "maybe")));
    }
}
