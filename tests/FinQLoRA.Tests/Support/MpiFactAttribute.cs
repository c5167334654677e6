using FinQLoRA.Distributed;

namespace FinQLoRA.Tests.Support;

/// <summary>A test that needs Open MPI's mpirun: skipped with the install command when it is missing, except
/// under CI=true, where it runs (and fails). The MPI tests train and run seeded models, so none needs ../shared.</summary>
public sealed class MpiFactAttribute : FactAttribute
{
    public MpiFactAttribute()
    {
        if (!Shared.IsCi && !MpirunPresent())
            Skip = "needs Open MPI's mpirun: apt-get install openmpi-bin libopenmpi-dev (or .ci/install-deps.sh)";
    }

    private static bool MpirunPresent()
    {
        try { MpiLauncher.FindMpirun(); return true; }
        catch (UserInputException) { return false; }
    }
}
