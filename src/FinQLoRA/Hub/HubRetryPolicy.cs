namespace FinQLoRA.Hub;

/// <summary>
/// How long the client keeps trying when the network fails. Bounded in count and in time:
/// at most <see cref="MaxAttempts"/> attempts in a row that receive no new bytes (an attempt that makes progress
/// resets the count, so a flaky link still finishes a large file), each waiting at most <see cref="IdleTimeout"/>
/// for data, with exponential backoff between them capped at <see cref="MaxDelay"/>.
/// </summary>
public sealed record HubRetryPolicy(int MaxAttempts, TimeSpan FirstDelay, TimeSpan MaxDelay, TimeSpan IdleTimeout)
{
    public static HubRetryPolicy Default { get; } = new(5, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(60));

    /// <summary>Wait before retry number <paramref name="failures"/> (1-based): 1x, 2x, 4x ... the first delay, capped.</summary>
    public TimeSpan DelayAfter(int failures) =>
        TimeSpan.FromTicks(Math.Min(MaxDelay.Ticks, FirstDelay.Ticks * (1L << Math.Min(failures - 1, 30))));
}
