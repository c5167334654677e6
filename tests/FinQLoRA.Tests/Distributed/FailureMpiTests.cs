using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Distributed;

/// <summary>
/// A rank that dies or stalls mid-job must end the whole job with a message and a non-zero exit code, never hang.
/// In every scenario both ranks complete one all-reduce, then rank 1 fails while rank 0 enters the second.
/// What ends the job, measured here (Open MPI 4.1.4): for a killed or exiting rank, mpirun itself (it notices the
/// rank's end without MPI_Finalize and kills the rest); for a rank that is alive but never arrives, our
/// collective watchdog. <see cref="MpiJob.Run"/> kills the process tree and fails the test if a job hangs.
/// </summary>
[Collection(MpiCollection.Name)]
public sealed class FailureMpiTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(45);

    [MpiFact]
    public void KilledRankEndsTheJobWithMpirunsMessage()
    {
        MpiJob job = MpiJob.RunHost("killed", Limit);
        AssertFailedAfterFirstAllReduce(job);
        Assert.Contains("rank 1", job.Output);
        Assert.Contains("signal 9", job.Output);
    }

    [MpiFact]
    public void ExitingRankEndsTheJobWithItsExitCode()
    {
        MpiJob job = MpiJob.RunHost("exited", Limit);
        AssertFailedAfterFirstAllReduce(job);
        Assert.Equal(3, job.ExitCode);
        Assert.Contains("Exit code:    3", job.Output);
    }

    [MpiFact]
    public void StalledRankIsCaughtByTheWatchdog()
    {
        MpiJob job = MpiJob.RunHost("stalled", Limit, new Dictionary<string, string> { ["FINQLORA_COLLECTIVE_TIMEOUT"] = "2" });
        AssertFailedAfterFirstAllReduce(job);
        Assert.Contains("rank 0: collective MPI_Iallreduce timed out after 2 s; another rank probably died — aborting", job.Output);
        Assert.Equal(124, job.ExitCode);
    }

    private static void AssertFailedAfterFirstAllReduce(MpiJob job)
    {
        Assert.True(job.ExitCode != 0, $"the job should fail, but exited with 0:\n{job.Output}");
        Assert.Equal([2, 2, 2, 2], job.Values(0, "first-allreduce"));
        Assert.Equal([2, 2, 2, 2], job.Values(1, "first-allreduce"));
        Assert.False(job.Printed(0, "second-allreduce"), $"rank 0 completed an all-reduce without rank 1:\n{job.Output}");
    }
}
