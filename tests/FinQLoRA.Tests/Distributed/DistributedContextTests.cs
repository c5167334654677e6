using FinQLoRA.Distributed;
using TorchSharp;

namespace FinQLoRA.Tests.Distributed;

public sealed class DistributedContextTests
{
    static DistributedContextTests() => FinQLoRA.Runtime.TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void WithoutALauncherTheRunIsSingleProcessOnCpu()
    {
        int threads = torch.get_num_threads();
        try
        {
            using var context = DistributedContext.Create(LaunchEnvironment.Single, cudaAvailable: false, backend: null);
            Assert.IsType<SingleProcessCommunicator>(context.Communicator);
            Assert.Equal(DeviceType.CPU, context.Device.type);
            Assert.True(context.IsMain);
            Assert.Equal(1, context.Size);
            Assert.Equal(Math.Max(1, Environment.ProcessorCount), torch.get_num_threads());
        }
        finally
        {
            torch.set_num_threads(threads);
        }
    }

    [Fact]
    public void UnknownBackendIsAUserError() =>
        Assert.Contains("FINQLORA_COMM_BACKEND='gloo'",
            Assert.Throws<UserInputException>(() => DistributedContext.Create(LaunchEnvironment.Single, false, "gloo")).Message);
}
