using FinQLoRA.Tests.Distributed;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Training;

/// <summary>0/1 Adam on 2 ranks through <c>finqlora train</c>: its communication volume, exact resume from per-rank
/// checkpoint state, and a rank that fails ending the whole job.</summary>
[Collection(MpiCollection.Name)]
public sealed class ZeroOneAdamDataParallelMpiTests(ZeroOneAdamMpiRunFixture run) : IClassFixture<ZeroOneAdamMpiRunFixture>
{
    [MpiFact]
    public void AfterTheFreezeEveryStepSendsAtLeast16TimesLessThanTheFullPrecisionStep()
    {
        TrainingRun.AssertSucceeded(run.Run);
        var bytes = TrainingRun.Metrics(run.Full).ToDictionary(m => m["step"]!.GetValue<int>(), m => m["comm_bytes"]!.GetValue<long>());
        // Step 4 is the last variance step: a full-precision fp32 all-reduce of every gradient, as AdamW's.
        long fullPrecision = bytes[4];
        long adapterBytes = TrainingRun.Adapter(run.Full).Values.Sum(v => v.Length) * 4L;
        Assert.InRange(fullPrecision, adapterBytes, adapterBytes + 64);
        // Steps 5.. are 1-bit synchronisations or local steps (only the loss and token counts travel).
        for (int step = 5; step <= 12; step++)
            Assert.True(bytes[step] * 16 <= fullPrecision, $"step {step} sent {bytes[step]} bytes, full precision {fullPrecision}");
        Assert.Contains(bytes.Where(kv => kv.Key > 4), kv => kv.Value > 64); // some steps synchronise (1-bit)
        Assert.Contains(bytes.Where(kv => kv.Key > 4), kv => kv.Value <= 64); // and some are local
    }

    [MpiFact]
    public void ResumingFromTheStep7CheckpointOnTwoRanksEndsBitIdentical()
    {
        TrainingRun.AssertSucceeded(run.Run);
        Assert.True(File.Exists(Path.Combine(run.Checkpoint, "training_state.rank1.safetensors")));
        string resumed = run.CopyOfCheckpoint("resumed");
        TrainingRun.AssertSucceeded(TrainingRun.TwoRanks(run.Arguments(resumed, "--resume")));
        Assert.Equal(0.0, TensorAssert.MaxDiff(TrainingRun.Adapter(run.Full), TrainingRun.Adapter(resumed)));
        // The resumed folder's log starts after the checkpoint (the copy has no metrics.jsonl).
        Assert.Equal(TrainingRun.Metrics(run.Full).Skip(7).Select(m => m.ToJsonString()).Select(StripTimings),
            TrainingRun.Metrics(resumed).Select(m => m.ToJsonString()).Select(StripTimings));
    }

    [MpiFact]
    public void ARankThatFailsEndsTheJobAtOnceWithItsReason()
    {
        TrainingRun.AssertSucceeded(run.Run);
        string broken = run.CopyOfCheckpoint("broken");
        File.Delete(Path.Combine(broken, "checkpoint-7", "training_state.rank1.safetensors"));
        // Rank 1 fails while loading; rank 0 goes on into its first collective. Without the abort it would wait there
        // for the watchdog (set far beyond the test's limit); with it the job ends at once, with rank 1's message.
        var environment = new Dictionary<string, string> { ["FINQLORA_COLLECTIVE_TIMEOUT"] = "600" };
        MpiJob job = TrainingRun.TwoRanks(run.Arguments(broken, "--resume"), environment);
        Assert.Equal(2, job.ExitCode);
        Assert.Contains("error: rank 1 of 2:", job.Output);
        Assert.Contains("training_state.rank1.safetensors is missing", job.Output);
        Assert.True(job.Elapsed < TimeSpan.FromSeconds(60), $"took {job.Elapsed}");
    }

    /// <summary>A metrics line without its timing-dependent fields.</summary>
    private static string StripTimings(string json)
    {
        var o = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
        foreach (string key in new[] { "tokens_per_second", "eta_seconds", "rss_bytes" }) o.Remove(key);
        return o.ToJsonString();
    }
}
