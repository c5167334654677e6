using System.Runtime.InteropServices;

namespace FinQLoRA.Hub;

/// <summary>
/// Puts a cached file at its place in the output folder. A hard link costs no space (a Llama 8B checkpoint is
/// 16 GB); where linking fails (another file system, Windows) the file is copied. Either way the new entry is made
/// under a temp name and renamed, so the output never holds a half-written file.
/// </summary>
internal static partial class LocalPlacement
{
    public static void Place(string cached, string destination)
    {
        destination = Path.GetFullPath(destination);
        if (string.Equals(Path.GetFullPath(cached), destination, StringComparison.Ordinal)) return;
        var source = new FileInfo(cached);
        var existing = new FileInfo(destination);
        if (existing.Exists && existing.Length == source.Length && existing.LastWriteTimeUtc == source.LastWriteTimeUtc) return;

        Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
        string temp = $"{destination}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            if (OperatingSystem.IsWindows() || Link(cached, temp) != 0)
            {
                File.Copy(cached, temp, overwrite: true);
                File.SetLastWriteTimeUtc(temp, source.LastWriteTimeUtc);
            }
            File.Move(temp, destination, overwrite: true);
        }
        catch
        {
            if (File.Exists(temp)) File.Delete(temp);
            throw;
        }
    }

    [LibraryImport("libc", EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string existingPath, string newPath);
}
