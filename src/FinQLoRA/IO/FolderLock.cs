using System.Globalization;

namespace FinQLoRA.IO;

/// <summary>
/// An exclusive claim on a folder while a process works in it (a training run): <c>.finqlora.lock</c> holds the
/// owner's process id and start time. A second claimant is refused with the holder named; a lock whose process is
/// gone (killed, crashed) — or whose pid now belongs to a different process — is stale and taken over.
/// </summary>
public sealed class FolderLock : IDisposable
{
    public const string FileName = ".finqlora.lock";
    private readonly string _path;
    private bool _released;

    private FolderLock(string path) => _path = path;

    /// <exception cref="UserInputException">another live process holds the folder</exception>
    public static FolderLock Acquire(string folder)
    {
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, FileName);
        string me = Describe(Environment.ProcessId);
        for (int attempt = 0; attempt < 3; attempt++)
        {
            try
            {
                using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None))
                using (var writer = new StreamWriter(stream)) writer.Write(me);
                return new FolderLock(path);
            }
            catch (IOException) when (File.Exists(path))
            {
                string holder;
                try { holder = File.ReadAllText(path).Trim(); } catch (IOException) { continue; }
                if (IsAlive(holder))
                    throw UserInputException.About($"{folder}: in use by another run (process {holder.Split(' ')[0]}, lock {path}); wait for it to end or choose another {new ConfigField("out")}");
                // stale: its process is gone; remove only if it still holds what we read (another claimant may have taken it)
                try { if (File.ReadAllText(path).Trim() == holder) File.Delete(path); } catch (IOException) { }
            }
        }
        throw new UserInputException($"{folder}: could not take the lock {path}; another run keeps claiming it");
    }

    public void Dispose()
    {
        if (_released) return;
        _released = true;
        try { if (File.Exists(_path) && File.ReadAllText(_path).Trim() == Describe(Environment.ProcessId)) File.Delete(_path); }
        catch (IOException) { }
    }

    /// <summary>"pid starttime": the start time (clock ticks after boot, /proc/PID/stat field 22) tells a recycled pid apart.</summary>
    internal static string Describe(int pid) => $"{pid} {StartTime(pid)}";

    internal static bool IsAlive(string holder)
    {
        var parts = holder.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || !int.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int pid)) return false;
        string? start = StartTime(pid);
        if (start == null) return false;
        return parts.Length < 2 || parts[1] == start;
    }

    private static string? StartTime(int pid)
    {
        if (!OperatingSystem.IsLinux())
        {
            try { using var p = System.Diagnostics.Process.GetProcessById(pid); return p.HasExited ? null : "0"; }
            catch (ArgumentException) { return null; }
        }
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // the command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields.Length > 19 ? fields[19] : null;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}
