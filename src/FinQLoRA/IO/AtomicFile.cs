namespace FinQLoRA.IO;

/// <summary>Writes files so that readers see either the old file or the whole new one, never half of it.</summary>
public static class AtomicFile
{
    /// <summary>Writes through <paramref name="write"/> into a temp file beside <paramref name="path"/>, then renames it.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string temp = $"{full}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            if (File.Exists(temp)) File.Delete(temp);
            throw;
        }
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, s => { using var w = new StreamWriter(s, new System.Text.UTF8Encoding(false), leaveOpen: true); w.Write(text); });

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        byte[] copy = bytes.ToArray();
        Write(path, s => s.Write(copy));
    }

    /// <summary>Builds a whole directory under a temp name, then renames it into place (replacing an old one).</summary>
    public static void WriteDirectory(string path, Action<string> build)
    {
        string full = Path.GetFullPath(path).TrimEnd('/');
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string temp = $"{full}.{Environment.ProcessId}.tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, true);
        Directory.CreateDirectory(temp);
        try
        {
            build(temp);
            string? old = null;
            if (Directory.Exists(full)) { old = $"{full}.{Environment.ProcessId}.old"; Directory.Move(full, old); }
            Directory.Move(temp, full);
            if (old != null) Directory.Delete(old, true);
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, true);
            throw;
        }
    }
}
