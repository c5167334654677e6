using System.Runtime.InteropServices;

namespace FinQLoRA.IO;

/// <summary>Paths as the file system sees them: symbolic links resolved, so "is X inside Y" cannot be fooled by a link.</summary>
public static partial class FileSystemPaths
{
    /// <summary>The canonical absolute form of <paramref name="path"/>: its longest existing prefix with links resolved
    /// (realpath), then the rest as written.</summary>
    public static string Canonical(string path)
    {
        string full = Path.GetFullPath(path);
        string existing = full, rest = "";
        while (!Path.Exists(existing))
        {
            string? parent = Path.GetDirectoryName(existing);
            if (parent == null) return Trim(full);
            rest = rest.Length == 0 ? Path.GetFileName(existing) : Path.Combine(Path.GetFileName(existing), rest);
            existing = parent;
        }
        string resolved = RealPath(existing) ?? existing;
        return Trim(rest.Length == 0 ? resolved : Path.Combine(resolved, rest));
    }

    /// <summary>True when <paramref name="inner"/> is <paramref name="outer"/> or lies anywhere below it (both canonical).</summary>
    public static bool IsSameOrInside(string inner, string outer) =>
        inner == outer || outer == "/" || inner.StartsWith(outer + "/", StringComparison.Ordinal);

    /// <summary>The nearest folder of <paramref name="path"/> (itself or an ancestor) that exists.</summary>
    public static string NearestExistingFolder(string path)
    {
        string current = Path.GetFullPath(path);
        while (!Directory.Exists(current)) current = Path.GetDirectoryName(current) ?? "/";
        return current;
    }

    /// <summary>Whether this process may create entries in <paramref name="folder"/> (access(2): permissions and
    /// read-only file systems).</summary>
    public static bool IsWritableFolder(string folder) => OperatingSystem.IsWindows() || Access(folder, 2) == 0;

    private static string Trim(string p) => p.Length > 1 ? p.TrimEnd('/') : p;

    private static string? RealPath(string path)
    {
        if (OperatingSystem.IsWindows()) return Path.GetFullPath(path);
        nint p = RealPathNative(path, 0);
        if (p == 0) return null;
        try { return Marshal.PtrToStringUTF8(p); }
        finally { Free(p); }
    }

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint RealPathNative(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint p);

    [LibraryImport("libc", EntryPoint = "access", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Access(string path, int mode);
}
