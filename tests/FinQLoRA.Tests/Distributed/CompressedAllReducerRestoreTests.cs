using FinQLoRA.Distributed;
using TorchSharp;

namespace FinQLoRA.Tests.Distributed;

/// <summary>Error buffers restored from a checkpoint into a fresh reducer (as on a restarted rank) continue exactly.</summary>
public sealed class CompressedAllReducerRestoreTests
{
    static CompressedAllReducerRestoreTests() => FinQLoRA.Runtime.TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void AFreshReducerWithRestoredErrorsReducesLikeTheOriginal()
    {
        using var comm = new SingleProcessCommunicator();
        using var original = new CompressedAllReducer(comm);
        original.Reduce(torch.tensor(new float[] { 4, -4, 4, -4, 2, -2 }), "w"); // leaves worker error [1,-1,1,-1,-1,1,-3,-3]
        var (worker, server) = original.ErrorBuffers("w");

        using var restarted = new CompressedAllReducer(comm);
        restarted.RestoreErrors("w", worker.clone(), server.clone());
        var a = torch.tensor(new float[] { 2, -2, 2, -2, -2, 2 });
        var b = a.clone();
        original.Reduce(a, "w");
        restarted.Reduce(b, "w");
        Assert.Equal([3f, -3, 3, -3, -3, 3], b.data<float>().ToArray()); // ±√3 without the restored errors
        Assert.Equal(a.data<float>().ToArray(), b.data<float>().ToArray());
    }

    [Fact]
    public void BuffersNoBufferSizeGivesAreRefused()
    {
        using var comm = new SingleProcessCommunicator();
        using var reducer = new CompressedAllReducer(comm);
        var e = Assert.Throws<UserInputException>(() => reducer.RestoreErrors("w", torch.zeros(6), torch.zeros(6)));
        Assert.Contains("'w'", e.Message);
    }
}
