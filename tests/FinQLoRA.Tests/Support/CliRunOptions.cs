namespace FinQLoRA.Tests.Support;

/// <summary>How <see cref="CliProcess"/> starts a child process; the defaults inherit this process's folder and environment.</summary>
public sealed record CliRunOptions
{
    public string? WorkingDirectory { get; init; }

    /// <summary>Variables set for the child; a null value removes one it would inherit.</summary>
    public IReadOnlyDictionary<string, string?> Environment { get; init; } = new Dictionary<string, string?>();

    /// <summary>Gives the child a closed stdin (mpirun forwards stdin to rank 0 and would wait on it).</summary>
    public bool CloseStdin { get; init; }
}
