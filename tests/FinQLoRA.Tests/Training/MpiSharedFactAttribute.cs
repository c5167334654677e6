using FinQLoRA.Tests.Distributed;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Training;

/// <summary>A test that needs both Open MPI's mpirun and the shared folder (a model): skipped, with the reason of
/// whichever is missing, except under CI=true.</summary>
public sealed class MpiSharedFactAttribute : FactAttribute
{
    public MpiSharedFactAttribute()
    {
        Skip = new MpiFactAttribute().Skip ?? new SharedFactAttribute().Skip;
    }
}
