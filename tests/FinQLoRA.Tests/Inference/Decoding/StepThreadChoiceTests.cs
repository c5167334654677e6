using FinQLoRA.Inference.Decoding;

namespace FinQLoRA.Tests.Inference.Decoding;

/// <summary>The managed step's thread count from recorded step times (given, not measured: the choice, not the clock,
/// is under test): both counts are tried, the faster one runs, and every 16th step probes the other, whose time the
/// probe replaces.</summary>
public sealed class StepThreadChoiceTests
{
    [Fact]
    public void TheFasterCountRunsAndTheOtherIsProbedEvery16Steps()
    {
        var choice = new StepThreadChoice(2);
        Assert.Equal(2, choice.Threads);
        choice.Record(2, 3000); // a busy machine: the threaded step is slow
        Assert.Equal(1, choice.Threads);
        choice.Record(1, 1000);
        var counts = new List<int>();
        for (int s = 0; s < 32; s++)
        {
            int threads = choice.Threads;
            counts.Add(threads);
            choice.Record(threads, threads == 1 ? 1000 : 3000);
        }
        Assert.Equal(2, counts.Count(t => t == 2)); // steps 16 and 32 of the run probe the threaded step
        // the machine gets idle: the next probe sees the threaded step faster, and it takes over
        for (int s = 0; s < 16; s++)
        {
            int threads = choice.Threads;
            choice.Record(threads, threads == 1 ? 1000 : 400);
        }
        Assert.Equal(2, choice.Threads);
    }

    [Fact]
    public void OneTorchThreadAlwaysRunsOne()
    {
        var choice = new StepThreadChoice(1);
        Assert.Equal(1, choice.Threads);
        choice.Record(1, 1000);
        Assert.Equal(1, choice.Threads);
    }
}
