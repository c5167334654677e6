using FinQLoRA.Runtime;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Runtime;

/// <summary>FINQLORA_LIBTORCH_DIR: resolution and validation on fake folders (empty files suffice: only names are
/// looked at), and the whole path end to end through the CLI on the NuGet CPU libtorch beside the tests.</summary>
public sealed class ExternalLibTorchTests
{
    private const string Fix = "point it at libtorch's lib folder (a PyTorch install's torch/lib) holding a libLibTorchSharp.so built against that libtorch, or add the shim's folder after it separated by ':' (see docs/gpu.md)";

    private static void Touch(string folder, params string[] files)
    {
        foreach (string f in files) File.WriteAllBytes(Path.Combine(folder, f), []);
    }

    [Fact]
    public void UnsetOrBlankMeansTheNuGetRuntime()
    {
        Assert.Null(ExternalLibTorch.Resolve(null));
        Assert.Null(ExternalLibTorch.Resolve(""));
        Assert.Null(ExternalLibTorch.Resolve("  "));
    }

    [Fact]
    public void AFolderThatDoesNotExistIsNamed()
    {
        using var tmp = new TempFolder();
        string missing = Path.Combine(tmp.Path, "torch", "lib");
        var e = Assert.Throws<UserInputException>(() => ExternalLibTorch.Resolve(missing));
        Assert.Equal($"FINQLORA_LIBTORCH_DIR={missing}: folder '{missing}' does not exist; {Fix}", e.Message);
    }

    [Fact]
    public void AFolderLackingFilesNamesTheVariableAndEveryMissingFile()
    {
        using var tmp = new TempFolder();
        Touch(tmp.Path, "libc10.so", "libtorch_cuda.so");
        var e = Assert.Throws<UserInputException>(() => ExternalLibTorch.Resolve(tmp.Path));
        Assert.Equal($"FINQLORA_LIBTORCH_DIR={tmp.Path}: libtorch_cpu.so, libtorch.so, libLibTorchSharp.so not found in that folder; {Fix}", e.Message);
    }

    [Fact]
    public void APyTorchLibFolderWithoutAShimIsRefusedWithTheShimNamed()
    {
        using var tmp = new TempFolder();
        string lib = Directory.CreateDirectory(Path.Combine(tmp.Path, "lib")).FullName;
        string other = Directory.CreateDirectory(Path.Combine(tmp.Path, "other")).FullName;
        Touch(lib, "libc10.so", "libc10_cuda.so", "libtorch_cpu.so", "libtorch_cuda.so", "libtorch.so", "libtorch_python.so");
        string value = lib + ":" + other;
        var e = Assert.Throws<UserInputException>(() => ExternalLibTorch.Resolve(value));
        Assert.Equal($"FINQLORA_LIBTORCH_DIR={value}: libLibTorchSharp.so not found in any of its folders; {Fix}", e.Message);
    }

    [Fact]
    public void EachLibraryComesFromTheFirstFolderHoldingItInLoadOrderWithTheShimLast()
    {
        using var tmp = new TempFolder();
        string torchLib = Directory.CreateDirectory(Path.Combine(tmp.Path, "torch", "lib")).FullName;
        string shimDir = Directory.CreateDirectory(Path.Combine(tmp.Path, "shim")).FullName;
        Touch(torchLib, "libtorch.so", "libtorch_cuda.so", "libtorch_cpu.so", "libc10.so", "libc10_cuda.so");
        Touch(shimDir, "libLibTorchSharp.so", "libtorch.so"); // a stray libtorch.so after torch/lib is not taken

        var external = ExternalLibTorch.Resolve(torchLib + ":" + shimDir)!;

        Assert.Equal(
            new[] { "libc10.so", "libc10_cuda.so", "libtorch_cpu.so", "libtorch_cuda.so", "libtorch.so" }.Select(f => Path.Combine(torchLib, f))
                .Append(Path.Combine(shimDir, "libLibTorchSharp.so")),
            external.Libraries);
        Assert.Equal(Path.Combine(shimDir, "libLibTorchSharp.so"), external.Shim);
        Assert.True(external.HasCuda);

        // The other way round the stray copy wins: the order of the folders is the user's choice.
        var reversed = ExternalLibTorch.Resolve(shimDir + ":" + torchLib)!;
        Assert.Equal(Path.Combine(shimDir, "libtorch.so"), reversed.Libraries[^2]);
    }

    [Fact]
    public void ACpuLibtorchNeedsNoCudaLibraries()
    {
        using var tmp = new TempFolder();
        Touch(tmp.Path, "libc10.so", "libtorch_cpu.so", "libtorch.so", "libLibTorchSharp.so");
        var external = ExternalLibTorch.Resolve(tmp.Path)!;
        Assert.False(external.HasCuda);
        Assert.Equal(new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so", "libLibTorchSharp.so" }, external.Libraries.Select(Path.GetFileName));
    }

    [Fact]
    public void TheVersionIsReadBesideTheLibFolderNotTakenFromTorchSharp()
    {
        using var tmp = new TempFolder();
        string torch = Directory.CreateDirectory(Path.Combine(tmp.Path, "torch", "lib")).FullName;
        Touch(torch, "libc10.so", "libtorch_cpu.so", "libtorch.so", "libLibTorchSharp.so");
        Assert.Null(ExternalLibTorch.Resolve(torch)!.Version);

        // a PyTorch install: torch/version.py
        File.WriteAllText(Path.Combine(tmp.Path, "torch", "version.py"),
            "from typing import Optional\n\n__all__ = ['__version__', 'debug', 'cuda', 'git_version', 'hip']\n__version__ = '2.11.0+cu130'\ndebug = False\ncuda: Optional[str] = '13.0'\n");
        Assert.Equal("2.11.0+cu130", ExternalLibTorch.Resolve(torch)!.Version);

        // a libtorch distribution: libtorch/build-version
        string libtorch = Directory.CreateDirectory(Path.Combine(tmp.Path, "libtorch", "lib")).FullName;
        Touch(libtorch, "libc10.so", "libtorch_cpu.so", "libtorch.so", "libLibTorchSharp.so");
        File.WriteAllText(Path.Combine(tmp.Path, "libtorch", "build-version"), "2.10.0+cpu\n");
        Assert.Equal("2.10.0+cpu", ExternalLibTorch.Resolve(libtorch)!.Version);
    }

    [Fact]
    public void TheCliSaysInOneLineWhichLibraryDoesNotLoad()
    {
        using var tmp = new TempFolder();
        Touch(tmp.Path, "libc10.so", "libtorch_cpu.so", "libtorch.so", "libLibTorchSharp.so"); // empty: not ELF files
        var (exit, output) = CliProcess.Run(TimeSpan.FromMinutes(2), new Dictionary<string, string> { ["FINQLORA_LIBTORCH_DIR"] = tmp.Path }, "version");
        Assert.Equal(2, exit);
        string line = Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        string c10 = Path.Combine(tmp.Path, "libc10.so");
        // the dynamic linker's own words (glibc's for an empty file) come through
        Assert.StartsWith($"error: FINQLORA_LIBTORCH_DIR={tmp.Path}: {c10} does not load ({c10}: file too short); ", line);
        Assert.EndsWith("point it at a libtorch for linux-x64 whose dependencies are installed (see docs/gpu.md)", line);
    }

    [Fact]
    public void TheCliRunsOnALibtorchNamedByTheVariable()
    {
        // The NuGet CPU libtorch and shim copied beside the tests stand in for a PyTorch install's torch/lib.
        string folder = AppContext.BaseDirectory;
        Assert.NotNull(ExternalLibTorch.Resolve(folder));
        var (exit, output) = CliProcess.Run(TimeSpan.FromMinutes(2), new Dictionary<string, string> { ["FINQLORA_LIBTORCH_DIR"] = folder }, "version");
        Assert.True(exit == 0, output);
        bool hostHasVersion = new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6" }
            .Where(File.Exists).Any(p => System.Text.Encoding.ASCII.GetString(File.ReadAllBytes(p)).Contains("GLIBCXX_3.4.32"));
        // the NuGet folder has no version file beside it, so the loaded version is not claimed
        Assert.Contains($"libtorch unknown from FINQLORA_LIBTORCH_DIR={folder} (native loader: {(hostHasVersion ? "external" : "external-patched")}; TorchSharp is built for libtorch ", output);
        Assert.Contains("cuda available: False", output);
    }
}
