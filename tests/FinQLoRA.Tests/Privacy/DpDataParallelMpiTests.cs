using FinQLoRA.Tests.Distributed;
using FinQLoRA.Tests.Support;
using FinQLoRA.Tests.Training;

namespace FinQLoRA.Tests.Privacy;

/// <summary>
/// DP-SGD under data parallelism is the same mechanism as on one process: <c>mpirun -np 2 finqlora train --dp
/// --batch-size 2</c> and <c>finqlora train --dp --batch-size 4</c> draw the same units each step (one Poisson draw over
/// the data set, q = 4/32 both times), clip them alike and add rank 0's noise once, so they end with the same adapter
/// and record the same ε. Dropout is 0 (with dropout the two layouts draw their masks differently by design).
/// </summary>
[Collection(MpiCollection.Name)]
public sealed class DpDataParallelMpiTests
{
    [MpiFact]
    public void Two_ranks_train_the_adapter_one_process_trains()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string one = Path.Combine(dir.Path, "one"), two = Path.Combine(dir.Path, "two");
        string[] extra = ["--dropout", "0", "--save-every", "0", "--dp", "--dp-noise-multiplier", "0.8"];
        TrainingRun.AssertSucceeded(TrainingRun.Single(TrainingRun.Arguments(data, one, 4, 8, extra)));
        TrainingRun.AssertSucceeded(TrainingRun.TwoRanks(TrainingRun.Arguments(data, two, 2, 8, extra)));

        var single = TrainingRun.Adapter(one);
        var ddp = TrainingRun.Adapter(two);
        Assert.True(single.Values.Any(v => v.Any(x => Math.Abs(x) > 1e-3)), "the adapter did not train");
        double difference = TensorAssert.MaxDiff(single, ddp);
        Assert.True(difference <= 1e-5, $"adapters differ by up to {difference}"); // only the order of the sums differs

        var singleMetrics = TrainingRun.Metrics(one);
        var ddpMetrics = TrainingRun.Metrics(two);
        foreach (var (s, d) in singleMetrics.Zip(ddpMetrics))
        {
            Assert.Equal(s["dp_units"]!.GetValue<long>(), d["dp_units"]!.GetValue<long>());
            // the PRV's FFT sums in an order that depends on the thread count (one per rank under mpirun): last bits only
            double e1 = s["epsilon"]!.GetValue<double>(), e2 = d["epsilon"]!.GetValue<double>();
            Assert.True(Math.Abs(e1 - e2) <= 1e-9 * e1, $"ε {e1} vs {e2}");
        }
    }
}
