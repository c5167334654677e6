using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Distributed;

/// <summary>The "reducers" scenario: bucketed gradient averaging and 0/1 Adam's compressed all-reduce on 2 ranks.</summary>
public sealed class ReducersJob() : HostScenarioJob("reducers");

[Collection(MpiCollection.Name)]
public sealed class ReducerMpiTests(ReducersJob fixture) : IClassFixture<ReducersJob>
{
    private MpiJob Job => fixture.Succeeded;

    [MpiFact]
    public void GradientAllReducerAveragesEveryGradientInThreeBuckets()
    {
        // rank r: [3] of r+1, [2,2] of 10(r+1), [2] bf16 of r+1 → means 1.5, 15, 1.5.
        // 16-byte buckets: 12 B | 16 B (12+16 > 16) | bf16 (other dtype) = 3 buckets;
        // bytes (p = 2, all-reduce sends B): 12 + 16 + 8 (bf16 travels as float32) = 36.
        foreach (int rank in new[] { 0, 1 })
        {
            Assert.Equal([1.5, 1.5, 1.5], Job.Values(rank, "grad0"));
            Assert.Equal([15, 15, 15, 15], Job.Values(rank, "grad1"));
            Assert.Equal([1.5, 1.5], Job.Values(rank, "grad2"));
            Assert.Equal("3", Job.Text(rank, "grad-buckets"));
            Assert.Equal("36", Job.Text(rank, "grad-bytes"));
        }
    }

    /// <summary>
    /// The hand computation (inputs in tests/FinQLoRA.MpiHost/ReducerScenarios.cs), n = 16 = 2·lcm(2, 8): no padding,
    /// chunk 0 = elements 0..7 (served by rank 0), chunk 1 = 8..15 (rank 1).
    /// <code>
    /// Worker, rank 0: x0 = [10,-10,2,-2,10,10,-10,2 | -2,10,-10,2,-2,10,10,-10]
    ///   six |2| and ten |10|: ‖x0‖² = 6·4 + 10·100 = 1024, scale0 = √(1024/16) = 8
    ///   signs0 = [+,-,+,-,+,+,-,+ | -,+,-,+,-,+,+,-]
    ///   worker_error0 = x0 − 8·signs0 = [2,-2,-6,6,2,2,-2,-6 | 6,2,-2,-6,6,2,2,-2]
    /// Worker, rank 1: x1 = 6·[+,+,+,+,-,-,-,+ | -,-,-,-,+,+,+,+]: scale1 = 6, worker_error1 = 0
    /// Server, rank 0 (chunk 0): m = (8·signs0 + 6·signs1)/2: where the signs agree ±7, where they differ
    ///   (8−6)/2 = ±1 with rank 0's sign → m = [7,-1,7,-1,1,1,-7,7]
    ///   ‖m‖² = 4·49 + 4·1 = 200, server scale = √(200/8) = 5, compressed = 5·[+,-,+,-,+,+,-,+]
    ///   server_error0 = m − compressed = [2,4,2,4,-4,-4,-2,2]
    /// Server, rank 1 (chunk 1): m = [-7,1,-7,1,-1,7,7,-1], scale 5, compressed 5·[-,+,-,+,-,+,+,-]
    ///   server_error1 = [-2,-4,-2,-4,4,2,2,4]
    /// Result on both ranks: [5,-5,5,-5,5,5,-5,5 | -5,5,-5,5,-5,5,5,-5]
    /// Bytes per rank: all-to-all of 2 sign bytes sends 1, all-gather of the 4-byte scale 4,
    ///   all-gather of 1 server sign byte 1, of the server scale 4 = 10 (vs 64 for a float32 all-reduce).
    /// </code>
    /// </summary>
    [MpiFact]
    public void CompressedAllReduceMatchesHandComputation()
    {
        double[] expected = [5, -5, 5, -5, 5, 5, -5, 5, -5, 5, -5, 5, -5, 5, 5, -5];
        foreach (int rank in new[] { 0, 1 })
        {
            Assert.Equal(expected, Job.Values(rank, "compressed"));
            Assert.Equal("10", Job.Text(rank, "compressed-bytes"));
        }
        Assert.Equal([2, -2, -6, 6, 2, 2, -2, -6, 6, 2, -2, -6, 6, 2, 2, -2], Job.Values(0, "worker-error"));
        Assert.Equal(new double[16], Job.Values(1, "worker-error"));
        Assert.Equal([2, 4, 2, 4, -4, -4, -2, 2], Job.Values(0, "server-error"));
        Assert.Equal([-2, -4, -2, -4, 4, 2, 2, 4], Job.Values(1, "server-error"));
    }
}
