namespace FinQLoRA.Tests.Support;

/// <summary>A finished child process (the CLI, or mpirun/script/unshare around it): its exit code and both streams.</summary>
public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    /// <summary>stdout then stderr, for checks and messages that do not care which stream a line came on.</summary>
    public string Output => Stdout + Stderr;

    /// <summary>From start to exit, for the tests that bound how long a job takes to end.</summary>
    public TimeSpan Elapsed { get; init; }
}
