using FinQLoRA.Distributed;

namespace FinQLoRA.Tests.Support;

/// <summary>A test that needs Open MPI's mpirun: skipped with the install command when it is missing, except
/// under CI=true, where it runs (and fails).</summary>
public sealed class MpiFactAttribute : FactAttribute
{
    public MpiFactAttribute()
    {
        if (!Shared.IsCi && !MpiRequirement.MpirunPresent) Skip = MpiRequirement.SkipReason;
    }
}

/// <summary>A test that needs both mpirun and the shared folder (a model): skipped with the reason of whichever is
/// missing (the shared folder first), except under CI=true.</summary>
public sealed class MpiSharedFactAttribute : FactAttribute
{
    public MpiSharedFactAttribute()
    {
        if (Shared.IsCi) return;
        if (!Shared.Available) Skip = Shared.SkipReason;
        else if (!MpiRequirement.MpirunPresent) Skip = MpiRequirement.SkipReason;
    }
}

internal static class MpiRequirement
{
    public const string SkipReason = "needs Open MPI's mpirun: apt-get install openmpi-bin libopenmpi-dev (or .ci/install-deps.sh)";

    public static bool MpirunPresent
    {
        get
        {
            try { MpiLauncher.FindMpirun(); return true; }
            catch (UserInputException) { return false; }
        }
    }
}
