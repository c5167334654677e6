using FinQLoRA.Distributed;
using TorchSharp;

namespace FinQLoRA.Tests.Distributed;

public sealed class SingleProcessCommunicatorTests
{
    static SingleProcessCommunicatorTests() => FinQLoRA.Runtime.TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void CollectivesOfOneRankKeepOrCopyValues()
    {
        using var comm = new SingleProcessCommunicator();
        var t = torch.tensor(new float[] { 1, 2 });
        comm.AllReduceSum(t);
        comm.AllReduceAverage(t);
        comm.Broadcast(t, 0);
        comm.Barrier();
        Assert.Equal([1f, 2], t.data<float>().ToArray());

        var gathered = torch.zeros(2);
        comm.AllGather(t, gathered);
        Assert.Equal([1f, 2], gathered.data<float>().ToArray());
        Assert.Throws<ArgumentException>(() => comm.AllGather(t, torch.zeros(3)));
        Assert.Equal(0, comm.BytesSent);
    }

    [Fact]
    public void MessagesToSelfAreQueuedPerTag()
    {
        using var comm = new SingleProcessCommunicator();
        comm.Send(torch.tensor(new float[] { 1, 2 }), 0, tag: 1);
        comm.Send(torch.tensor(new float[] { 3 }), 0, tag: 2);
        var two = torch.zeros(1);
        comm.Recv(two, 0, tag: 2);
        var one = torch.zeros(2);
        comm.Recv(one, 0, tag: 1);
        Assert.Equal([3f], two.data<float>().ToArray());
        Assert.Equal([1f, 2], one.data<float>().ToArray());
        Assert.Throws<InvalidOperationException>(() => comm.Recv(one, 0, tag: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => comm.Send(one, 1, tag: 1));
    }
}
