using FinQLoRA.Tests.Support;
using FinQLoRA.Training;

namespace FinQLoRA.Tests.Training;

/// <summary>The length of a run and its warm-up: a warm-up longer than the run is clamped to it, with a note.</summary>
public sealed class TrainingPlanTests
{
    private static TrainConfig Config(int maxSteps, int warmup) => new() { Model = "m", Data = "d.jsonl", MaxSteps = maxSteps, WarmupSteps = warmup };

    [Fact]
    public void AWarmUpLongerThanTheRunIsClampedWithANote()
    {
        var plan = TrainingPlan.For(Config(maxSteps: 2, warmup: 10), batchesPerEpoch: 8);
        Assert.Equal(2, plan.TotalSteps);
        Assert.Equal(2, plan.WarmupSteps);
        Assert.NotNull(plan.WarmupNote);
        Assert.Contains("warmup_steps = 10", plan.WarmupNote);
        Assert.DoesNotContain('\n', plan.WarmupNote);
    }

    [Theory]
    [InlineData(5, 2)]
    [InlineData(5, 5)]
    [InlineData(5, 0)]
    public void AWarmUpWithinTheRunIsKept(int maxSteps, int warmup)
    {
        var plan = TrainingPlan.For(Config(maxSteps, warmup), batchesPerEpoch: 8);
        Assert.Equal(warmup, plan.WarmupSteps);
        Assert.Null(plan.WarmupNote);
    }

    [Fact]
    public void EpochsSetTheLengthWithoutMaxSteps()
    {
        // 10 batches per epoch, 2 per step: 5 steps an epoch, 3 epochs (the default warm-up of 10 is within the 15)
        var plan = TrainingPlan.For(new TrainConfig { Model = "m", Data = "d.jsonl", Epochs = 3, GradAccum = 2 }, batchesPerEpoch: 10);
        Assert.Equal((5, 15, 10), (plan.StepsPerEpoch, plan.TotalSteps, plan.WarmupSteps));
    }

    [Fact]
    public void TrainWithTwoStepsAndTheDefaultWarmUpRunsAndRecordsTheWarmUpItUsed()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string run = dir.PathOf("run");
        var r = CliProcess.RunSeparately(TrainingRun.Limit, "train", "--model", SeededLlama.Folder, "--data", data, "--out", run,
            "--max-steps", "2", "--batch-size", "4", "--bits", "16", "--dtype", "f32", "--max-seq-len", "48");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Single(r.Stderr.Split('\n'), l => l.StartsWith("note: warmup_steps = 10", StringComparison.Ordinal));
        Assert.StartsWith("done: 2 steps", r.Stdout);
        Assert.Single(r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)); // stdout: the result only
        var record = RunRecord.Read(Path.Combine(run, RunRecord.FileName));
        Assert.Equal(2, record["effective_warmup_steps"]!.GetValue<int>());
        Assert.Equal(10, record["config"]!["warmup_steps"]!.GetValue<int>());
    }
}
