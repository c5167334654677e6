using FinQLoRA.Runtime;

namespace FinQLoRA.Tests.Runtime;

public sealed class TorchNativeLoaderTests
{
    private static string ShippedLibrary =>
        new[] { Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so"), Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so") }
            .First(File.Exists);

    [Fact]
    public void TorchLoadsAndTheLoaderSaysWhatItDid()
    {
        TorchNativeLoader.EnsureLoaded();
        Assert.Contains(TorchNativeLoader.Mode, new[] { "original", "patched" });
        using var t = TorchSharp.torch.ones(2, 2);
        Assert.Equal(4f, t.sum().item<float>());
    }

    [Fact]
    public void PatchWeakensExactlyTheOneVersionNeedAndChangesOneByte()
    {
        byte[] original = File.ReadAllBytes(ShippedLibrary);
        byte[] patched = (byte[])original.Clone();
        Assert.Equal(1, TorchNativeLoader.MarkVersionNeedWeak(patched, "GLIBCXX_3.4.32"));
        Assert.Equal(1, original.Zip(patched).Count(p => p.First != p.Second));
        // Idempotent: marking again changes nothing further.
        byte[] twice = (byte[])patched.Clone();
        TorchNativeLoader.MarkVersionNeedWeak(twice, "GLIBCXX_3.4.32");
        Assert.Equal(patched, twice);
        Assert.Equal(0, TorchNativeLoader.MarkVersionNeedWeak((byte[])original.Clone(), "GLIBCXX_9.9.99"));
    }

    [Fact]
    public void NonElfInputIsRejected() =>
        Assert.Throws<InvalidOperationException>(() => TorchNativeLoader.MarkVersionNeedWeak(new byte[128], "GLIBCXX_3.4.32"));

    [Fact]
    public void OnThisHostThePatchIsUsedExactlyWhenLibstdcxxLacksTheVersion()
    {
        TorchNativeLoader.EnsureLoaded();
        bool hostHasVersion = new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6" }
            .Where(File.Exists).Any(p => System.Text.Encoding.ASCII.GetString(File.ReadAllBytes(p)).Contains("GLIBCXX_3.4.32"));
        Assert.Equal(hostHasVersion ? "original" : "patched", TorchNativeLoader.Mode);
    }
}

public sealed class OpenMpDefaultsTests
{
    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern IntPtr getenv(string name);

    /// <summary>libtorch's OpenMP threads must not spin-wait (measured 10–30× slowdowns on a busy 2-core machine).</summary>
    [Fact]
    public void NativeEnvironmentAsksForPassiveOpenMpWaiting()
    {
        FinQLoRA.Runtime.TorchNativeLoader.EnsureLoaded();
        string? value = System.Runtime.InteropServices.Marshal.PtrToStringAnsi(getenv("OMP_WAIT_POLICY"));
        string? userValue = Environment.GetEnvironmentVariable("OMP_WAIT_POLICY");
        Assert.Equal(string.IsNullOrEmpty(userValue) ? "PASSIVE" : userValue, value);
    }
}
