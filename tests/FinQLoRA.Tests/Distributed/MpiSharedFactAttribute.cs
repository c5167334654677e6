using FinQLoRA.Distributed;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Distributed;

/// <summary>A test that needs both Open MPI's mpirun and the shared folder: skipped (with the reason) when either is
/// missing, except under CI=true, where it runs (and fails).</summary>
public sealed class MpiSharedFactAttribute : FactAttribute
{
    public MpiSharedFactAttribute()
    {
        if (Shared.IsCi) return;
        if (!Shared.Available) Skip = Shared.SkipReason;
        else if (!MpirunPresent()) Skip = "needs Open MPI's mpirun: apt-get install openmpi-bin libopenmpi-dev (or .ci/install-deps.sh)";
    }

    private static bool MpirunPresent()
    {
        try { MpiLauncher.FindMpirun(); return true; }
        catch (UserInputException) { return false; }
    }
}
