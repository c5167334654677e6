using FinQLoRA.Distributed;

namespace FinQLoRA.Training;

/// <summary>
/// How a data-parallel job ends when one rank fails: a rank that fails alone would leave the others blocked in their
/// next collective until the watchdog's timeout (and its MPI_Finalize would wait for them), so every rank is ended
/// now, with this rank's reason and an exit code that says what kind of failure it was.
/// </summary>
public static class RankFailure
{
    /// <summary>3: training stopped on purpose (divergence); 2: the user's input; 1: anything else.</summary>
    public static int ExitCode(Exception e) => e switch { TrainingStoppedException => 3, UserInputException => 2, _ => 1 };

    /// <summary>The one line every rank's log shows.</summary>
    public static string Message(Exception e, int rank, int size, Func<UserInputException, string> describe)
    {
        string detail = e switch
        {
            UserInputException user => describe(user),
            TrainingStoppedException stopped => describe(stopped.Reason),
            _ => $"{e.GetType().Name}: {e.Message}",
        };
        return $"error: rank {rank} of {size}: {detail}; aborting the job";
    }

    /// <summary>Ends the whole job (does not return with MPI or NCCL).</summary>
    public static void AbortJob(ICommunicator comm, Exception e, Func<UserInputException, string> describe) =>
        comm.Abort(Message(e, comm.Rank, comm.Size, describe), ExitCode(e));
}
