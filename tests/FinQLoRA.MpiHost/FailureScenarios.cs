using System.Diagnostics;
using FinQLoRA.Distributed;
using TorchSharp;

namespace FinQLoRA.MpiHost;

/// <summary>A rank disappears or stops mid-job while the other waits in a collective; the job must end, not hang.</summary>
internal static class FailureScenarios
{
    /// <summary>Rank 1 kills itself with SIGKILL (no MPI_Finalize, no cleanup) after one good all-reduce.</summary>
    public static void Killed(ICommunicator comm) => Fail(comm, () => Process.GetCurrentProcess().Kill());

    /// <summary>Rank 1 exits with code 3 without MPI_Finalize after one good all-reduce.</summary>
    public static void Exited(ICommunicator comm) => Fail(comm, () => Environment.Exit(3));

    /// <summary>Rank 1 stays alive but never joins the second all-reduce: only the watchdog can end this.</summary>
    public static void Stalled(ICommunicator comm) => Fail(comm, () => Thread.Sleep(TimeSpan.FromMinutes(10)));

    private static void Fail(ICommunicator comm, Action rankOneFailure)
    {
        using var scope = torch.NewDisposeScope();
        var t = torch.ones(4);
        comm.AllReduceSum(t);
        Report.Line(comm.Rank, "first-allreduce", t);
        if (comm.Rank == 1) rankOneFailure();
        comm.AllReduceSum(t);
        Report.Line(comm.Rank, "second-allreduce", t); // must not be printed by rank 0
    }
}
