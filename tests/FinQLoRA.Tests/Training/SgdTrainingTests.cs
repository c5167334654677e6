using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Recipes;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;
using FinQLoRA.Training.Optimizers;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Training;

/// <summary>
/// <c>optimizer: sgd</c> in a whole run: an interrupted and resumed <see cref="FineTuneRecipe"/> run ends with the
/// uninterrupted run's adapter byte for byte (the momentum buffers come back from the checkpoint), and the CLI takes
/// <c>--optimizer sgd --momentum 0.9</c> but refuses a momentum under another optimizer before any work.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class SgdTrainingTests
{
    private const int Steps = 8;

    private static TrainConfig Config(string data, string outDir) => new()
    {
        Model = SeededLlama.Folder, Data = data, Out = outDir, Bits = 16, Dtype = ScalarType.Float32,
        Rank = 4, Alpha = 8, Dropout = 0.1, MaxSteps = Steps, BatchSize = 4, MaxSeqLen = 48, Lr = 0.05, WarmupSteps = 2,
        Optimizer = OptimizerKind.Sgd, Momentum = 0.9, WeightDecay = 0.01, SaveEvery = 0, Seed = 7,
    };

    [Fact]
    public void InterruptedAndResumedSgdRunEndsWithTheSameAdapterBytes()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);

        string straight = dir.PathOf("straight");
        var result = FineTuneRecipe.Run(new FineTuneOptions { Config = Config(data, straight) });
        Assert.Equal(Steps, result.Steps);

        // Interrupted as Ctrl-C does: the stop request lands while step 3 is reported; the run checkpoints after step 4.
        string interrupted = dir.PathOf("interrupted");
        using (var stop = new CancellationTokenSource())
        {
            var options = new FineTuneOptions
            {
                Config = Config(data, interrupted), Stop = stop.Token,
                Progress = line => { if (line.StartsWith($"step 3/{Steps} ", StringComparison.Ordinal)) stop.Cancel(); },
            };
            Assert.Equal(4, Assert.Throws<TrainingInterruptedException>(() => FineTuneRecipe.Run(options)).Step);
        }
        var resumed = FineTuneRecipe.Run(new FineTuneOptions { Config = Config(data, interrupted) with { Resume = true } });
        Assert.Equal(Steps, resumed.Steps);

        byte[] expected = File.ReadAllBytes(Path.Combine(straight, "adapter", PeftAdapterFiles.WeightsFileName));
        Assert.Equal(expected, File.ReadAllBytes(Path.Combine(interrupted, "adapter", PeftAdapterFiles.WeightsFileName)));

        // The same run resumed with plain SGD would mix two optimizers' states: refused, naming the key.
        string mixed = dir.PathOf("mixed");
        using (var stop = new CancellationTokenSource())
        {
            var options = new FineTuneOptions
            {
                Config = Config(data, mixed), Stop = stop.Token,
                Progress = line => { if (line.StartsWith($"step 3/{Steps} ", StringComparison.Ordinal)) stop.Cancel(); },
            };
            Assert.Throws<TrainingInterruptedException>(() => FineTuneRecipe.Run(options));
        }
        var e = Assert.Throws<UserInputException>(() => FineTuneRecipe.Run(new FineTuneOptions { Config = Config(data, mixed) with { Resume = true, Momentum = 0 } }));
        Assert.Contains("resume with --momentum 0.9", e.Render(f => "--" + f.Replace('_', '-')));
    }

    [Fact]
    public void CliTrainsWithSgdAndMomentumAndRecordsThem()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string run = dir.PathOf("run");
        var r = CliProcess.RunSeparately(TrainingRun.Limit, "train", "--model", SeededLlama.Folder, "--data", data, "--out", run,
            "--max-steps", "3", "--batch-size", "4", "--max-seq-len", "48", "--warmup-steps", "0", "--optimizer", "sgd", "--momentum", "0.9");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains(", sgd", r.Stderr); // the "training: ..." line names the optimizer
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "run.json")))!["config"]!;
        Assert.Equal("sgd", config["optimizer"]!.GetValue<string>());
        Assert.Equal(0.9, config["momentum"]!.GetValue<double>());
        Assert.Contains("Optimizer sgd (momentum 0.9)", File.ReadAllText(Path.Combine(run, "adapter", "README.md")));
        Assert.True(File.Exists(Path.Combine(run, "adapter", PeftAdapterFiles.WeightsFileName)));
    }

    [Fact]
    public void CliRefusesAMomentumUnderAdamWBeforeAnyWork()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string run = dir.PathOf("run");
        var r = CliProcess.RunSeparately(TimeSpan.FromMinutes(2), "train", "--model", SeededLlama.Folder, "--data", data, "--out", run,
            "--max-steps", "1", "--optimizer", "adamw", "--momentum", "0.5");
        string line = CliProcess.AssertOneLineError(r, "momentum = 0.5 is invalid");
        Assert.Contains("only sgd uses momentum", line);
        Assert.False(Directory.Exists(run), "a refused run created its folder");
    }
}
