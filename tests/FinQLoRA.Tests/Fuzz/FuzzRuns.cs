using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Fuzz;

/// <summary>The inputs, and every case started once for the class (they run a few at a time, the rows just wait for theirs).</summary>
public sealed class FuzzRuns : IDisposable
{
    private readonly TempFolder _root = new();

    internal FuzzInputs Inputs { get; } = new();

    internal List<string> SharedBefore { get; }

    internal IReadOnlyDictionary<string, Task<FuzzRun>> All { get; }

    public FuzzRuns()
    {
        SharedBefore = FuzzRun.Snapshot(Inputs.Root);
        All = FuzzRun.StartAll(FuzzCorpus.All, Inputs, _root.Path);
    }

    public void Dispose()
    {
        try { Task.WaitAll([.. All.Values], TimeSpan.FromMinutes(5)); } catch (AggregateException) { }
        Inputs.Dispose();
        _root.Dispose();
    }
}

