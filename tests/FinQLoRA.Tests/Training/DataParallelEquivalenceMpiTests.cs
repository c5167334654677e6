using FinQLoRA.Tests.Distributed;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Training;

/// <summary>
/// Data parallelism is exact: <c>mpirun -np 2 finqlora train --batch-size 2</c> and <c>finqlora train --batch-size 4</c>
/// (same seed and data, AdamW, fp32 over a 16-bit base, 20 steps over 2.5 epochs) end with the same adapter. Dropout is
/// 0 because with dropout the two layouts differ by design: one process draws one mask for the batch of 4, two ranks
/// draw a mask each from their own generator for their half.
/// </summary>
[Collection(MpiCollection.Name)]
public sealed class DataParallelEquivalenceMpiTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "finqlora-ddp-eq-" + Guid.NewGuid().ToString("N"));

    [MpiFact]
    public void TwoRanksOfBatchTwoMatchOneProcessOfBatchFour()
    {
        string data = TrainingRun.WriteData(_dir);
        string one = Path.Combine(_dir, "one"), two = Path.Combine(_dir, "two");
        string[] extra = ["--dropout", "0", "--save-every", "10"];
        TrainingRun.AssertSucceeded(TrainingRun.Single(TrainingRun.Arguments(data, one, 4, 20, extra)));
        TrainingRun.AssertSucceeded(TrainingRun.TwoRanks(TrainingRun.Arguments(data, two, 2, 20, extra)));

        var single = TrainingRun.Adapter(one);
        var ddp = TrainingRun.Adapter(two);
        Assert.True(single.Values.Any(v => v.Any(x => Math.Abs(x) > 1e-3)), "the adapter did not train"); // lora_B starts at 0
        double difference = TensorAssert.MaxDiff(single, ddp);
        Assert.True(difference <= 1e-5, $"adapters differ by up to {difference}");

        // Same loss at every step; rank 0 alone wrote the log (one line per step, not one per rank).
        var singleMetrics = TrainingRun.Metrics(one);
        var ddpMetrics = TrainingRun.Metrics(two);
        Assert.Equal(Enumerable.Range(1, 20), ddpMetrics.Select(m => m["step"]!.GetValue<int>()));
        foreach (var (s, d) in singleMetrics.Zip(ddpMetrics))
            Assert.Equal(s["loss"]!.GetValue<double>(), d["loss"]!.GetValue<double>(), 1e-5);

        // AdamW all-reduces every fp32 adapter gradient each step; a single process sends nothing.
        Assert.All(singleMetrics, m => Assert.Equal(0, m["comm_bytes"]!.GetValue<long>()));
        long adapterBytes = single.Values.Sum(v => v.Length) * 4L;
        Assert.All(ddpMetrics, m => Assert.InRange(m["comm_bytes"]!.GetValue<long>(), adapterBytes, adapterBytes + 64));

        // The checkpoint holds rank 1's own random state; with AdamW its optimizer state and weights are rank 0's.
        string checkpoint = Path.Combine(two, "checkpoint-10");
        Assert.True(File.Exists(Path.Combine(checkpoint, "training_state.rank1.safetensors")), checkpoint);
        Assert.Equal([FinQLoRA.IO.OutputMarker.FileName, "adapter", "checkpoint-10", "loss.png", "metrics.jsonl", "run.json"],
            Directory.EnumerateFileSystemEntries(two).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Contains("\"world_size\": 2", File.ReadAllText(Path.Combine(two, "run.json")));
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }
}
