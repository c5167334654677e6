using FinQLoRA.Distributed;
using TorchSharp;

namespace FinQLoRA.Tests.Distributed;

/// <summary>The compressed all-reduce's arithmetic with one rank (no MPI); the 2-rank case is in ReducerMpiTests.</summary>
public sealed class CompressedAllReducerTests
{
    static CompressedAllReducerTests() => FinQLoRA.Runtime.TorchNativeLoader.EnsureLoaded();

    [Theory]
    [InlineData(1, 1, 8)]
    [InlineData(6, 1, 8)]
    [InlineData(16, 2, 16)]
    [InlineData(17, 2, 32)]
    [InlineData(10, 3, 72)] // 3·lcm(3, 8) = 3·24
    [InlineData(72, 3, 72)]
    public void PaddingIsAMultipleOfWorldTimesLcmOfWorldAndEight(long n, int world, long expected) =>
        Assert.Equal(expected, CompressedAllReducer.PaddedLength(n, world));

    /// <summary>
    /// World 1, n = 6, padded to 8 with zeros.
    /// <code>
    /// call 1: x = [4,-4,4,-4,2,-2,0,0]; ‖x‖² = 4·16 + 2·4 = 72, scale = √(72/8) = 3
    ///         signs (sign(0) = +1) = [+,-,+,-,+,-,+,+], C = 3·signs
    ///         worker_error = x − C = [1,-1,1,-1,-1,1,-3,-3]
    ///         server: m = 3·signs / 1, scale √(72/8) = 3, server_error = 0 → result [3,-3,3,-3,3,-3]
    /// call 2: input [2,-2,2,-2,-2,2], x = input + worker_error = [3,-3,3,-3,-3,3,-3,-3] (the padding's error
    ///         makes the pad values negative now); all |3|: scale 3, worker_error = 0 → result [3,-3,3,-3,-3,3]
    /// </code>
    /// </summary>
    [Fact]
    public void SingleRankMathMatchesHandComputationIncludingPaddingAndErrorFeedback()
    {
        using var comm = new SingleProcessCommunicator();
        using var reducer = new CompressedAllReducer(comm);

        var first = torch.tensor(new float[] { 4, -4, 4, -4, 2, -2 }).reshape(2, 3);
        Assert.Same(first, reducer.Reduce(first, "w"));
        Assert.Equal([3f, -3, 3, -3, 3, -3], first.reshape(-1).data<float>().ToArray());
        Assert.Equal(new long[] { 2, 3 }, first.shape);
        var (worker, server) = reducer.ErrorBuffers("w");
        Assert.Equal([1f, -1, 1, -1, -1, 1, -3, -3], worker.data<float>().ToArray());
        Assert.Equal(new float[8], server.data<float>().ToArray());

        var second = torch.tensor(new float[] { 2, -2, 2, -2, -2, 2 }).reshape(2, 3);
        reducer.Reduce(second, "w");
        Assert.Equal([3f, -3, 3, -3, -3, 3], second.reshape(-1).data<float>().ToArray());
        Assert.Equal(new float[8], worker.data<float>().ToArray());
        Assert.Equal(0, reducer.LastBytesSent);
    }

    [Fact]
    public void BFloat16BuffersAreReducedInPlaceAndKeysAreIndependent()
    {
        using var comm = new SingleProcessCommunicator();
        using var reducer = new CompressedAllReducer(comm);
        var a = torch.tensor(new float[] { 4, -4, 4, -4, 2, -2 }).to(torch.ScalarType.BFloat16);
        reducer.Reduce(a, "a");
        Assert.Equal(torch.ScalarType.BFloat16, a.dtype);
        Assert.Equal([3f, -3, 3, -3, 3, -3], a.to(torch.ScalarType.Float32).data<float>().ToArray());

        var b = torch.tensor(new float[] { 1, 1 });
        reducer.Reduce(b, "b"); // padded [1,1,0,0,0,0,0,0]: scale √(2/8) = 0.5, every sign +
        Assert.Equal([0.5f, 0.5f], b.data<float>().ToArray());

        reducer.ResetErrors();
        Assert.Equal(new float[8], reducer.ErrorBuffers("a").Worker.data<float>().ToArray());
    }

    [Fact]
    public void AKeyCannotChangeItsBufferSize()
    {
        using var comm = new SingleProcessCommunicator();
        using var reducer = new CompressedAllReducer(comm);
        reducer.Reduce(torch.ones(8), "k");
        Assert.Contains("'k'", Assert.Throws<ArgumentException>(() => reducer.Reduce(torch.ones(9), "k")).Message);
    }
}
