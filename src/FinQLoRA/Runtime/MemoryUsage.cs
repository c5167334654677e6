namespace FinQLoRA.Runtime;

/// <summary>Process memory from /proc (resident set now and at its peak), for progress lines and run records.</summary>
public static class MemoryUsage
{
    public static long CurrentRssBytes => ReadStatus("VmRSS:");
    /// <summary>Peak resident set size of this process (VmHWM), the figure the memory planner is checked against.</summary>
    public static long PeakRssBytes => ReadStatus("VmHWM:");

    private static long ReadStatus(string key)
    {
        if (!OperatingSystem.IsLinux()) return Environment.WorkingSet;
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return long.Parse(line[key.Length..].Trim().Split(' ')[0]) * 1024;
        return 0;
    }

    public static string Format(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):F2} GiB" : $"{bytes / (double)(1L << 20):F0} MiB";
}
