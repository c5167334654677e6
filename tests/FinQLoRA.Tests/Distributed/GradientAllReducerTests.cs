using FinQLoRA.Distributed;
using TorchSharp;

namespace FinQLoRA.Tests.Distributed;

/// <summary>Bucketing, checked against a recording communicator that pretends to have 2 ranks.</summary>
public sealed class GradientAllReducerTests
{
    static GradientAllReducerTests() => FinQLoRA.Runtime.TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void GradientsAreGroupedInOrderByDtypeAndBucketSizeAndCopiedBack()
    {
        var comm = new RecordingCommunicator();
        var gradients = new[]
        {
            torch.ones(2),                                        // 8 B
            torch.ones(3),                                        // 12 B: 8 + 12 ≤ 20, same bucket
            torch.ones(10),                                       // 40 B: larger than a bucket, alone
            torch.ones(2).to(torch.ScalarType.BFloat16),          // other dtype, new bucket
            torch.ones(4, 2).t(),                                 // non-contiguous float32
        };
        var reducer = new GradientAllReducer(comm, bucketBytes: 20);
        reducer.AllReduceAverage(gradients);
        Assert.Equal(["Float32x5", "Float32x10", "BFloat16x2", "Float32x8"], comm.Calls);
        Assert.Equal(4, reducer.LastBucketCount);
        foreach (var g in gradients) Assert.True(g.to(torch.ScalarType.Float32).eq(2).all().item<bool>()); // the fake doubles
    }

    /// <summary>Records each all-reduce and doubles the values (so the copy-back is visible).</summary>
    private sealed class RecordingCommunicator : ICommunicator
    {
        public List<string> Calls { get; } = [];
        public int Rank => 0;
        public int Size => 2;
        public int LocalRank => 0;
        public string Backend => "recording";
        public long BytesSent => 0;
        public void AllReduceSum(torch.Tensor tensor) => throw new NotSupportedException();
        public void AllReduceAverage(torch.Tensor tensor) { Calls.Add($"{tensor.dtype}x{tensor.numel()}"); tensor.mul_(2); }
        public void AllGather(torch.Tensor input, torch.Tensor output) => throw new NotSupportedException();
        public void AllToAll(torch.Tensor input, torch.Tensor output) => throw new NotSupportedException();
        public void Broadcast(torch.Tensor tensor, int root) => throw new NotSupportedException();
        public void Send(torch.Tensor tensor, int destination, int tag) => throw new NotSupportedException();
        public void Recv(torch.Tensor into, int source, int tag) => throw new NotSupportedException();
        public void Barrier() { }
        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        public void Abort(string message, int exitCode) => throw new InvalidOperationException(message);
        public void Dispose() { }
    }
}
