using FinQLoRA.Distributed;

namespace FinQLoRA.Tests.Support;

/// <summary>A test that needs Open MPI's mpirun: skipped with the install command when it is missing, except
/// under CI=true, where it runs (and fails). The MPI tests train and run seeded models, so none needs ../shared.</summary>
public sealed class MpiFactAttribute : FactAttribute
{
    public MpiFactAttribute() => Skip = MpiAvailability.SkipReason;
}

/// <summary><see cref="MpiFactAttribute"/> for a theory.</summary>
public sealed class MpiTheoryAttribute : TheoryAttribute
{
    public MpiTheoryAttribute() => Skip = MpiAvailability.SkipReason;
}

internal static class MpiAvailability
{
    /// <summary>Why an MPI test is skipped here, or null when it runs.</summary>
    public static string? SkipReason => !Shared.IsCi && !MpirunPresent()
        ? "needs Open MPI's mpirun: apt-get install openmpi-bin libopenmpi-dev (or .ci/install-deps.sh)"
        : null;

    private static bool MpirunPresent()
    {
        try { MpiLauncher.FindMpirun(); return true; }
        catch (UserInputException) { return false; }
    }
}
