namespace FinQLoRA.Tests.Support;

/// <summary>
/// Tests that train in this process and compare bytes with another in-process run: libtorch's default generator
/// (dropout masks, adapter initialisation) is one per process, so a test drawing from it in parallel would change what
/// they draw. They run alone, after the parallel tests.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalRngCollection
{
    public const string Name = "libtorch's global generator";
}
