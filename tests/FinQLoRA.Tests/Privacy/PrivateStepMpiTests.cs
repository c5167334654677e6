using FinQLoRA.Tests.Distributed;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Privacy;

/// <summary>The "private-noise" scenario (tests/FinQLoRA.MpiHost/PrivateStepScenarios.cs): DP-SGD on 2 ranks with a zero data gradient.</summary>
public sealed class PrivateNoiseJob() : HostScenarioJob("private-noise");

[Collection(MpiCollection.Name)]
public sealed class PrivateStepMpiTests(PrivateNoiseJob fixture) : IClassFixture<PrivateNoiseJob>
{
    private MpiJob Job => fixture.Succeeded;

    /// <summary>
    /// Noise is added once in total, not once per rank: on both ranks the gradient each step wrote is exactly rank 0's
    /// (seed, step) stream divided by E (rank 1 added nothing), so its variance is (σC/E)², within 5 standard deviations
    /// of the estimate over the 7,168 values (5·√(2/7168) = 8.4 %), where noise from both ranks would give twice that.
    /// </summary>
    [MpiFact]
    public void NoiseIsAddedOnceInTotalWithStandardDeviationSigmaCOverE()
    {
        foreach (int rank in new[] { 0, 1 })
        {
            Assert.Equal([0.0], Job.Values(rank, "noise-vs-rank0-stream"));
            double n = Job.Values(rank, "coordinates")[0];
            Assert.Equal(8 * 896, n);
            Assert.InRange(Job.Values(rank, "variance-ratio")[0], 1 - 5 * Math.Sqrt(2 / n), 1 + 5 * Math.Sqrt(2 / n));
            Assert.Equal(Enumerable.Repeat(4.0, 8), Job.Values(rank, "units")); // two units per rank, counted over both
        }
    }

    [MpiFact]
    public void BothRanksEndWithTheSameAdapter() =>
        Assert.Equal(Job.Text(0, "adapter-sha256"), Job.Text(1, "adapter-sha256"));
}
