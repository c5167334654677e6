using System.Diagnostics;
using System.Globalization;

namespace FinQLoRA.Distributed;

/// <summary>
/// Turns "a peer died, so this rank waits forever inside a collective" into a prompt, explained exit.
/// MPI's blocking collectives have no timeout, so the communicators start every operation non-blocking
/// (<c>MPI_Iallreduce</c>, <c>MPI_Isend</c>, ...) and poll it here: spin briefly (small messages finish in
/// microseconds), then yield, then sleep 1 ms between polls so a waiting rank leaves the CPU to the others.
/// Past the deadline the watchdog prints
/// <c>rank R: collective X timed out after N s; another rank probably died — aborting</c> and aborts the job.
/// (Open MPI's <c>mpirun</c> already tears the job down when a rank exits or is killed; the watchdog covers what it
/// cannot see: a rank that is alive but never arrives, or launchers that do not clean up.)
/// </summary>
public sealed class CollectiveWatchdog(TimeSpan timeout)
{
    /// <summary>Environment variable holding the timeout in seconds (may be fractional).</summary>
    public const string TimeoutVariable = "FINQLORA_COLLECTIVE_TIMEOUT";

    /// <summary>Exit code of a job aborted by the watchdog (the same as coreutils' <c>timeout</c>).</summary>
    public const int TimeoutExitCode = 124;

    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(600);

    private static readonly TimeSpan SpinPhase = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan YieldPhase = TimeSpan.FromMilliseconds(10);

    public TimeSpan Timeout { get; } = timeout > TimeSpan.Zero
        ? timeout
        : throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "collective timeout must be positive");

    /// <summary>Called with the timeout's message just before the job is aborted, on the thread that waited: a server
    /// marks itself not ready first.</summary>
    public Action<string>? BeforeAbort { get; set; }

    /// <summary>The timeout from <see cref="TimeoutVariable"/>, else <see cref="DefaultTimeout"/>.</summary>
    public static CollectiveWatchdog FromEnvironment() => new(ParseTimeout(Environment.GetEnvironmentVariable(TimeoutVariable)));

    internal static TimeSpan ParseTimeout(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return DefaultTimeout;
        if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) && seconds > 0 && double.IsFinite(seconds))
            return TimeSpan.FromSeconds(seconds);
        throw new UserInputException($"{TimeoutVariable}='{value}' is not a positive number of seconds; set e.g. {TimeoutVariable}=600 or unset it for the default of {DefaultTimeout.TotalSeconds:0} s");
    }

    /// <summary>The one line printed before aborting.</summary>
    public static string TimeoutMessage(int rank, string operation, TimeSpan timeout) =>
        $"rank {rank}: collective {operation} timed out after {timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s; another rank probably died — aborting";

    /// <summary>Starts the clock for one operation; poll it, and call <see cref="Deadline.Pause"/> between polls.</summary>
    internal Deadline Start() => new(Stopwatch.GetTimestamp(), Timeout);

    /// <summary>The clock of one operation in flight.</summary>
    internal readonly struct Deadline(long start, TimeSpan timeout)
    {
        public bool Expired => Stopwatch.GetElapsedTime(start) > timeout;

        /// <summary>Waits a little before the next poll: spins first, then yields, then sleeps 1 ms.</summary>
        public void Pause()
        {
            TimeSpan waited = Stopwatch.GetElapsedTime(start);
            if (waited < SpinPhase) Thread.SpinWait(50);
            else if (waited < YieldPhase) Thread.Yield();
            else Thread.Sleep(1);
        }
    }
}
