using System.Text.Json.Nodes;

namespace FinQLoRA.IO;

/// <summary>
/// The file that says "FinQLoRA wrote this folder". Only a folder that carries it may ever be replaced (and then
/// only when the user asks with <c>--overwrite</c>): a folder without it holds someone else's files.
/// </summary>
public static class OutputMarker
{
    public const string FileName = ".finqlora-output";

    public static bool IsMarked(string folder) => File.Exists(Path.Combine(folder, FileName));

    /// <summary>Writes the marker into <paramref name="folder"/> (which must exist).</summary>
    public static void Write(string folder, string what)
    {
        var o = new JsonObject { ["written_by"] = "finqlora", ["what"] = what, ["created_utc"] = DateTime.UtcNow.ToString("O") };
        File.WriteAllText(Path.Combine(folder, FileName), o.ToJsonString() + "\n");
    }

    /// <summary>True when the folder is missing or holds nothing but FinQLoRA's own marker and lock (a run or an
    /// evaluation that stopped before writing anything).</summary>
    public static bool IsEmptyOrMissing(string folder) => !Directory.Exists(folder) ||
        Directory.EnumerateFileSystemEntries(folder).All(e => Path.GetFileName(e) is FileName or FolderLock.FileName);
}
