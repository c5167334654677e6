using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Distributed;

/// <summary>The "collectives" scenario of the test host, run once under <c>mpirun -np 2</c> and checked per operation.</summary>
public sealed class CollectivesJob() : HostScenarioJob("collectives");

[Collection(MpiCollection.Name)]
public sealed class CommunicatorMpiTests(CollectivesJob fixture) : IClassFixture<CollectivesJob>
{
    private MpiJob Job => fixture.Succeeded;

    [MpiFact]
    public void BothRanksSeeWorldOfTwoAndFinish()
    {
        foreach (int rank in new[] { 0, 1 })
        {
            Assert.Equal("2", Job.Text(rank, "size"));
            Assert.True(Job.Printed(rank, "done"));
        }
    }

    [MpiFact]
    public void AllReduceOfFloat32SumsAndAverages()
    {
        // rank r contributes [r+1, 10(r+1), -0.5]: sums [1+2, 10+20, -1], means half of that.
        foreach (int rank in new[] { 0, 1 })
        {
            Assert.Equal([3, 30, -1], Job.Values(rank, "f32-sum"));
            Assert.Equal([1.5, 15, -0.5], Job.Values(rank, "f32-avg"));
        }
    }

    [MpiFact]
    public void AllReduceOfBFloat16StaysBFloat16AndIsExact()
    {
        // rank r contributes [1.5(r+1), 256(r+1)]; all values are exact in bfloat16.
        foreach (int rank in new[] { 0, 1 })
        {
            Assert.Equal([4.5, 768], Job.Values(rank, "bf16-sum"));
            Assert.Equal([2.25, 384], Job.Values(rank, "bf16-avg"));
            Assert.Equal("BFloat16", Job.Text(rank, "bf16-dtype"));
        }
    }

    [MpiFact]
    public void AllReduceWritesBackThroughNonContiguousViewsAndHandlesInt64()
    {
        // arange(6)+r summed over r = 0, 1 → 2·arange(6) + 1; 2^40 twice = 2^41.
        foreach (int rank in new[] { 0, 1 })
        {
            Assert.Equal([1, 3, 5, 7, 9, 11], Job.Values(rank, "noncontiguous-sum"));
            Assert.Equal([1, 2199023255552], Job.Values(rank, "i64-sum"));
        }
    }

    [MpiFact]
    public void AllGatherConcatenatesInRankOrder()
    {
        foreach (int rank in new[] { 0, 1 })
            Assert.Equal([1, 2, 11, 12], Job.Values(rank, "allgather"));
    }

    [MpiFact]
    public void AllToAllSendsChunkJToRankJ()
    {
        // rank 0 sends [0,1 | 2,3], rank 1 sends [100,101 | 102,103]; rank j receives both ranks' chunk j.
        Assert.Equal([0, 1, 100, 101], Job.Values(0, "alltoall"));
        Assert.Equal([2, 3, 102, 103], Job.Values(1, "alltoall"));
    }

    [MpiFact]
    public void BroadcastCopiesTheRootsTensor()
    {
        foreach (int rank in new[] { 0, 1 })
            Assert.Equal([7, 8, 9], Job.Values(rank, "broadcast"));
    }

    [MpiFact]
    public void SendAndRecvMatchByTagInBothDirections()
    {
        Assert.Equal([1, 2, 3, 0.25], Job.Values(1, "recv"));
        Assert.Equal([2, 4, 6], Job.Values(0, "recv"));
    }

    [MpiFact]
    public void BytesSentFollowTheTrafficModel()
    {
        // Per rank (p = 2): all-reduce of B bytes sends B; bf16 travels as float32.
        // f32 sum 12 + avg 12 + bf16 sum 8 + avg 8 + 6 floats 24 + int64 16 + all-gather of 8 B: 8
        // + all-to-all of 16 B: 8 = 96 on both ranks; then broadcast from rank 1 (chain 1 → 0): rank 1 sends 24;
        // sends: rank 0 sends 12 + 2, rank 1 sends 12.
        Assert.Equal("110", Job.Text(0, "bytes-sent"));
        Assert.Equal("132", Job.Text(1, "bytes-sent"));
    }
}
