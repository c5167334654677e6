namespace FinQLoRA.IO;

/// <summary>Writes files so that readers see either the old file or the whole new one, never half of it.</summary>
public static class AtomicFile
{
    /// <summary>Writes through <paramref name="write"/> into a temp file beside <paramref name="path"/>, then renames it.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string temp = $"{full}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e)
        {
            TryDeleteFile(temp);
            if (WriteFailure.Describe(e, path) is { } user) throw user;
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

    /// <summary>The temp folder name <see cref="WriteDirectory"/> builds <paramref name="path"/> under.</summary>
    public static string TempDirectoryName(string path) => $"{Path.GetFullPath(path).TrimEnd('/')}.{Environment.ProcessId}.tmp";

    /// <summary>
    /// Builds a whole directory under a temp name beside <paramref name="path"/>, marks it as FinQLoRA's
    /// (<see cref="OutputMarker"/>), then renames it into place. An existing folder is replaced only when FinQLoRA wrote
    /// it: a folder with anybody else's files is never removed (callers check <see cref="OutputPlacement"/> first; this
    /// is the last line of defence).
    /// </summary>
    public static void WriteDirectory(string path, Action<string> build)
    {
        string full = Path.GetFullPath(path).TrimEnd('/');
        if (File.Exists(full)) throw new UserInputException($"{path}: is a file; give a folder path");
        if (!OutputMarker.IsEmptyOrMissing(full) && !OutputMarker.IsMarked(full))
            throw new UserInputException($"{path}: the folder is not empty and holds files FinQLoRA did not write; it is left as it is; choose a new or empty folder");
        string temp = TempDirectoryName(full);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            // A leftover of this same process id is ours (an earlier attempt of this process, or a recycled pid's).
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            Directory.CreateDirectory(temp);
            build(temp);
            OutputMarker.Write(temp, Path.GetFileName(full));
            string? old = null;
            if (Directory.Exists(full)) { old = $"{full}.{Environment.ProcessId}.old"; Directory.Move(full, old); }
            Directory.Move(temp, full);
            if (old != null) Directory.Delete(old, recursive: true);
        }
        catch (Exception e)
        {
            try { if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true); } catch (IOException) { }
            if (WriteFailure.Describe(e, path) is { } user) throw user;
            throw;
        }
    }

    private static void TryDeleteFile(string path)
    {
        try { if (File.Exists(path)) File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
