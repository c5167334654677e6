using System.Runtime.InteropServices;
using FinQLoRA.Distributed;

namespace FinQLoRA.Tests.Distributed;

/// <summary>No GPU or NCCL here: only the "NCCL is missing" path is tested.</summary>
public sealed class NcclCommunicatorTests
{
    static NcclCommunicatorTests() => FinQLoRA.Runtime.TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void MissingNcclIsAOneLineUserErrorWithTheFix()
    {
        using var bootstrap = new SingleProcessCommunicator();
        var e = Assert.Throws<UserInputException>(() => NcclCommunicator.Create(bootstrap, null, "libnccl-absent.so.2"));
        Assert.Contains("NCCL (libnccl-absent.so.2) not found", e.Message);
        Assert.Contains("FINQLORA_COMM_BACKEND=mpi", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void DefaultLibraryNameIsReportedWhenAbsent()
    {
        if (NativeLibrary.TryLoad("libnccl.so.2", out _)) return; // a machine with NCCL: nothing to check here
        using var bootstrap = new SingleProcessCommunicator();
        Assert.Contains("libnccl.so.2", Assert.Throws<UserInputException>(() => NcclCommunicator.Create(bootstrap)).Message);
    }
}
