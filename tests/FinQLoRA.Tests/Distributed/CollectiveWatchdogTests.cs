using FinQLoRA.Distributed;

namespace FinQLoRA.Tests.Distributed;

public sealed class CollectiveWatchdogTests
{
    [Fact]
    public void TimeoutComesFromTheEnvironmentVariableInSeconds()
    {
        Assert.Equal(CollectiveWatchdog.DefaultTimeout, CollectiveWatchdog.ParseTimeout(null));
        Assert.Equal(TimeSpan.FromSeconds(600), CollectiveWatchdog.ParseTimeout(""));
        Assert.Equal(TimeSpan.FromSeconds(2.5), CollectiveWatchdog.ParseTimeout("2.5"));
        var e = Assert.Throws<UserInputException>(() => CollectiveWatchdog.ParseTimeout("ten"));
        Assert.Contains("FINQLORA_COLLECTIVE_TIMEOUT='ten'", e.Message);
        Assert.Throws<UserInputException>(() => CollectiveWatchdog.ParseTimeout("0"));
    }

    [Fact]
    public void TimeoutMessageNamesRankOperationAndSeconds() =>
        Assert.Equal("rank 3: collective MPI_Iallreduce timed out after 1.5 s; another rank probably died — aborting",
            CollectiveWatchdog.TimeoutMessage(3, "MPI_Iallreduce", TimeSpan.FromSeconds(1.5)));
}
