using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FinQLoRA.Runtime;

/// <summary>
/// Makes TorchSharp's native shim load on hosts whose libstdc++ predates GCC 13 (Debian 12, Ubuntu 22.04).
///
/// TorchSharp 0.107.0's <c>libLibTorchSharp.so</c> declares a need for <c>GLIBCXX_3.4.32</c> only because of
/// one symbol, <c>std::ios_base_library_init</c>, that GCC 13's &lt;iostream&gt; references and nothing calls.
/// On an older libstdc++ the loader refuses the library and TorchSharp's type initializer aborts the process.
/// The fix: write a private copy next to the original in which that one version need is marked weak
/// (<c>VER_FLG_WEAK</c> in its <c>Elf64_Vernaux</c> entry, a one-byte change), and route TorchSharp's
/// <c>DllImport("LibTorchSharp")</c> to the copy. The copy stays next to the original because the library finds
/// libtorch through its <c>$ORIGIN</c> RUNPATH. On hosts whose libstdc++ has the version, the original loads and
/// nothing is done. This must run before anything touches <c>TorchSharp.torch</c>: the library's module
/// initializer calls it, and so do the CLI's <c>Main</c> and the test assembly.
///
/// With <c>FINQLORA_LIBTORCH_DIR</c> set (<see cref="ExternalLibTorch"/>), libtorch and the shim come from the
/// folders it names instead (a PyTorch install's CUDA libtorch, for instance): each is loaded by full path, libtorch
/// first, so the shim's NEEDED entries bind to those copies by soname, and TorchSharp is routed to that shim.
/// </summary>
public static class TorchNativeLoader
{
    private const string LibraryName = "LibTorchSharp";
    private const string FileName = "libLibTorchSharp.so";
    private const string PatchedFileName = "libLibTorchSharp.weakver.so";
    private const string MissingVersion = "GLIBCXX_3.4.32";
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlagWeak = 0x2;

    private static readonly object Gate = new();
    private static bool _done;
    private static IntPtr _handle;

    private static UserInputException? _failure;

    /// <summary>What the loader did: "original" (nothing needed), "patched" (the weak copy is in use), "external"
    /// (libtorch and the shim from FINQLORA_LIBTORCH_DIR), "external-patched" (the same, with a weak copy of that
    /// shim), or "not-linux".</summary>
    public static string Mode { get; private set; } = "not-run";

    /// <summary>With FINQLORA_LIBTORCH_DIR: the version of the libtorch loaded from there when it can be read beside
    /// it (<see cref="ExternalLibTorch.Version"/>), else "unknown"; null otherwise.</summary>
    public static string? ExternalVersion { get; private set; }

#pragma warning disable CA2255 // a module initializer is exactly right here: it must run before TorchSharp's type initializer
    [ModuleInitializer]
    internal static void OnModuleLoad()
    {
        // A bad FINQLORA_LIBTORCH_DIR must not become a TypeInitializationException of the whole assembly: it is
        // kept and thrown again, as the user error it is, by the next explicit call (the CLI's Main makes one).
        try { EnsureLoaded(); }
        catch (UserInputException) { }
    }
#pragma warning restore CA2255

    /// <summary>Idempotent; safe to call from several places. Throws <see cref="UserInputException"/> (every time)
    /// when FINQLORA_LIBTORCH_DIR is set but names no usable libtorch.</summary>
    public static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (_failure != null) throw new UserInputException(_failure.Message);
            if (_done) return;
            _done = true;
            OpenMpDefaults.Apply(); // before libtorch (and its libgomp) is loaded
            if (!OperatingSystem.IsLinux()) { Mode = "not-linux"; return; }

            try
            {
                if (ExternalLibTorch.FromEnvironment() is { } external)
                {
                    LoadExternal(external);
                    return;
                }
            }
            catch (UserInputException e)
            {
                _failure = e;
                throw;
            }

            string? original = FindOriginal();
            if (original == null) { Mode = "original"; return; } // let TorchSharp's own probing report the problem
            if (NativeLibrary.TryLoad(original, out _)) { Mode = "original"; return; }

            string patched = Path.Combine(Path.GetDirectoryName(original)!, PatchedFileName);
            if (!File.Exists(patched) || File.GetLastWriteTimeUtc(patched) < File.GetLastWriteTimeUtc(original))
                WritePatchedCopy(original, patched);
            PreloadSiblings(original);
            _handle = NativeLibrary.Load(patched);
            Route(typeof(TorchSharp.torch).Assembly);
            Route(typeof(TorchNativeLoader).Assembly);
            Mode = "patched";
        }
    }

    private static void LoadExternal(ExternalLibTorch external)
    {
        string mode = "external";
        foreach (string library in external.Libraries)
        {
            bool shim = library == external.Shim;
            IntPtr handle = DynamicLinker.Open(library, bindNow: shim, out string error);
            if (handle == IntPtr.Zero && shim && error.Contains(MissingVersion, StringComparison.Ordinal))
            {
                // The NuGet package's shim on an older libstdc++: the same weak copy as below, written to a private
                // temp folder because the user's folder may be read-only; libtorch is already loaded, so the copy
                // needs no $ORIGIN.
                string patched = Path.Combine(Path.GetTempPath(), "finqlora-native",
                    Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(library)))[..16], PatchedFileName);
                Directory.CreateDirectory(Path.GetDirectoryName(patched)!);
                if (!File.Exists(patched) || File.GetLastWriteTimeUtc(patched) < File.GetLastWriteTimeUtc(library))
                    WritePatchedCopy(library, patched);
                handle = DynamicLinker.Open(patched, bindNow: true, out error);
                mode = "external-patched";
            }
            if (handle == IntPtr.Zero) throw external.LoadError(library, error);
            if (shim) _handle = handle;
        }
        Route(typeof(TorchSharp.torch).Assembly);
        Route(typeof(TorchNativeLoader).Assembly);
        ExternalVersion = external.Version ?? "unknown";
        Mode = mode;
    }

    private static void Route(Assembly assembly) =>
        NativeLibrary.SetDllImportResolver(assembly, (name, _, _) => name == LibraryName ? _handle : IntPtr.Zero);

    /// <summary>When the shim lives in the NuGet package folder (not beside libtorch), its $ORIGIN RUNPATH
    /// cannot find libtorch; loading libtorch first by full path satisfies the NEEDED entries by soname.</summary>
    private static void PreloadSiblings(string original)
    {
        string dir = Path.GetDirectoryName(original)!;
        if (File.Exists(Path.Combine(dir, "libtorch_cpu.so")) || File.Exists(Path.Combine(dir, "libtorch_cuda.so"))) return;
        foreach (string candidate in NuGetNativeFolders("libtorch-cpu-linux-x64"))
        {
            foreach (string lib in new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so" })
                NativeLibrary.TryLoad(Path.Combine(candidate, lib), out _);
            return;
        }
    }

    private static string? FindOriginal()
    {
        string baseDir = AppContext.BaseDirectory;
        var candidates = new List<string>
        {
            Path.Combine(baseDir, FileName),
            Path.Combine(baseDir, "runtimes", "linux-x64", "native", FileName),
        };
        candidates.AddRange(NuGetNativeFolders("torchsharp").Select(d => Path.Combine(d, FileName)));
        return candidates.FirstOrDefault(File.Exists);
    }

    private static IEnumerable<string> NuGetNativeFolders(string package)
    {
        string root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
            ? p
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        string pkg = Path.Combine(root, package);
        if (!Directory.Exists(pkg)) yield break;
        foreach (string version in Directory.GetDirectories(pkg).OrderDescending())
        {
            string native = Path.Combine(version, "runtimes", "linux-x64", "native");
            if (Directory.Exists(native)) yield return native;
        }
    }

    /// <summary>Copies the library with the GLIBCXX_3.4.32 need marked weak; temp file then rename, so parallel
    /// processes never see half a file.</summary>
    internal static void WritePatchedCopy(string original, string patched)
    {
        byte[] elf = File.ReadAllBytes(original);
        int changed = MarkVersionNeedWeak(elf, MissingVersion);
        if (changed != 1)
            throw new InvalidOperationException($"{original}: expected exactly one '{MissingVersion}' version need to weaken, found {changed}; this TorchSharp build is not the one the loader was written for");
        string temp = patched + "." + Environment.ProcessId + ".tmp";
        File.WriteAllBytes(temp, elf);
        File.Move(temp, patched, overwrite: true);
    }

    /// <summary>Sets VER_FLG_WEAK on every Elf64_Vernaux entry naming <paramref name="version"/>; returns how many changed.</summary>
    internal static int MarkVersionNeedWeak(byte[] elf, string version)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F' || elf[4] != 2 || elf[5] != 1)
            throw new InvalidOperationException("not a 64-bit little-endian ELF file");
        var span = elf.AsSpan();
        long shoff = BitConverter.ToInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        int changed = 0;
        for (int i = 0; i < shnum; i++)
        {
            int sh = checked((int)(shoff + (long)i * shentsize));
            if (BitConverter.ToUInt32(elf, sh + 4) != ShtGnuVerneed) continue;
            long offset = BitConverter.ToInt64(elf, sh + 0x18);
            int link = (int)BitConverter.ToUInt32(elf, sh + 0x28);
            int count = (int)BitConverter.ToUInt32(elf, sh + 0x2C);
            long strtab = BitConverter.ToInt64(elf, checked((int)(shoff + (long)link * shentsize)) + 0x18);

            long need = offset;
            for (int n = 0; n < count; n++)
            {
                int auxCount = BitConverter.ToUInt16(elf, (int)need + 2);
                long aux = need + BitConverter.ToUInt32(elf, (int)need + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    int name = (int)(strtab + BitConverter.ToUInt32(elf, (int)aux + 8));
                    int end = span[name..].IndexOf((byte)0);
                    if (System.Text.Encoding.ASCII.GetString(elf, name, end) == version)
                    {
                        ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                        BitConverter.TryWriteBytes(span.Slice((int)aux + 4, 2), (ushort)(flags | VerFlagWeak));
                        changed++;
                    }
                    aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                }
                need += BitConverter.ToUInt32(elf, (int)need + 12);
            }
        }
        return changed;
    }
}
