using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace FinQLoRA.Bench;

/// <summary>
/// Counts the ATen operators this process enters through the dispatcher (<c>at::_ops::&lt;op&gt;::call</c>, composite
/// ops' inner calls and the autograd engine's backward formulas included) while an action runs. TorchSharp has no
/// dispatcher hook, so the count comes from the kernel: <c>scripts/profile/aten-probes.sh</c> (root) puts one uprobe on
/// each entry point as the tracefs event group <c>finqlora_aten</c>; here the group is enabled for this process's
/// threads only (<c>set_event_pid</c>; other processes that load the same libtorch are not counted), the action runs,
/// and the trace's lines are counted per event. Without the probes <see cref="Available"/> is false and nothing runs.
/// </summary>
internal static partial class AtenOpCounter
{
    private const string Tracefs = "/sys/kernel/tracing";
    private const string Group = "finqlora_aten";

    public static bool Available => Directory.Exists(Path.Combine(Tracefs, "events", Group)) && File.Exists(Path.Combine(Tracefs, "set_event_pid"));

    public static string HowToEnable => $"op counts need the uprobes of scripts/profile/aten-probes.sh (root, tracefs at {Tracefs})";

    /// <summary>Ops per name entered while <paramref name="action"/> ran, by this process's threads.</summary>
    public static Dictionary<string, int> Count(Action action)
    {
        string bufferSize = File.ReadAllText(Path.Combine(Tracefs, "buffer_size_kb")).Trim();
        Write("tracing_on", "0");
        Clear();
        Write("buffer_size_kb", "65536"); // a 4x256 step enters ~20k ops; a full buffer would drop some silently
        Write("options/event-fork", "1");
        // every thread of this process (OpenMP's workers included); threads started later follow by event-fork
        var threads = Directory.GetDirectories("/proc/self/task").Select(Path.GetFileName).ToHashSet();
        Write("set_event_pid", string.Join(' ', threads));
        Write($"events/{Group}/enable", "1");
        Write("tracing_on", "1");
        // the counted lines are those between two markers of this call: what the buffer held before is not counted
        string mark = $"finqlora-ops-{Environment.ProcessId}-{Guid.NewGuid():N}";
        Write("trace_marker", mark + "-start");
        try
        {
            action();
            Write("trace_marker", mark + "-end");
        }
        finally
        {
            Write("tracing_on", "0");
            Write($"events/{Group}/enable", "0");
        }
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        bool inside = false, started = false, ended = false;
        foreach (string line in File.ReadLines(Path.Combine(Tracefs, "trace")))
        {
            if (line.Contains(mark + "-start", StringComparison.Ordinal)) { inside = started = true; continue; }
            if (line.Contains(mark + "-end", StringComparison.Ordinal)) { ended = true; break; }
            if (!inside) continue;
            var m = EventName().Match(line);
            // the pid filter is the kernel's; the line's own task id is checked too, in case an event slips past it
            if (!m.Success || !threads.Contains(m.Groups[1].Value) && !Directory.Exists($"/proc/self/task/{m.Groups[1].Value}")) continue;
            counts[m.Groups[2].Value] = counts.GetValueOrDefault(m.Groups[2].Value) + 1;
        }
        Clear();
        Write("set_event_pid", "");
        Write("buffer_size_kb", bufferSize);
        if (!started || !ended)
            throw new InvalidOperationException($"the trace buffer lost this step's {(started ? "last" : "first")} events; raise buffer_size_kb in {nameof(AtenOpCounter)}");
        return counts;
    }

    /// <summary>Empties the ring buffer: tracefs does so on an open for writing with O_TRUNC (as <c>echo &gt; trace</c>);
    /// .NET's FileMode.Truncate did not empty it, so the flags are given to open(2) directly.</summary>
    private static void Clear()
    {
        const int WriteOnly = 1, Truncate = 0x200;
        int fd = Open(Path.Combine(Tracefs, "trace"), WriteOnly | Truncate);
        if (fd < 0) throw new IOException($"open({Tracefs}/trace, O_WRONLY|O_TRUNC) failed: errno {Marshal.GetLastPInvokeError()}");
        Close(fd);
    }

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int Close(int fd);

    private static void Write(string file, string text) => File.WriteAllText(Path.Combine(Tracefs, file), text);

    /// <summary>A uprobe event's line: "  dotnet-1234 [001] ..... 12.345678: mul_Tensor: (0x7f...)".</summary>
    [GeneratedRegex(@"-(\d+) +\[\d+\] .*\d: ([A-Za-z0-9_]+): \(0x")]
    private static partial Regex EventName();
}
