namespace FinQLoRA.Tests.Support;

/// <summary>What this process has mapped, from <c>/proc/self/maps</c> (the kernel's own list, independent of how the
/// mapping was made), for tests of loading by mapping.</summary>
public static class ProcessMaps
{
    /// <summary>The permission fields ("rw-p", "r--s", …) of every mapping of <paramref name="path"/>; empty when none.</summary>
    public static IReadOnlyList<string> Of(string path) => Lines(path).Select(f => f[1]).ToList();

    /// <summary>True when <paramref name="address"/> lies inside a mapping of <paramref name="path"/>.</summary>
    public static bool Contains(string path, IntPtr address) => Lines(path).Any(f =>
    {
        var range = f[0].Split('-');
        ulong start = Convert.ToUInt64(range[0], 16), end = Convert.ToUInt64(range[1], 16), at = (ulong)address;
        return at >= start && at < end;
    });

    // "start-end perms offset dev inode   pathname", the pathname followed by " (deleted)" once the file is unlinked
    private static IEnumerable<string[]> Lines(string path)
    {
        string full = Path.GetFullPath(path);
        return File.ReadLines("/proc/self/maps")
            .Select(l => l.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length == 6 && (f[5].Trim() == full || f[5].Trim() == full + " (deleted)"))
            .ToList();
    }
}
