using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace FinQLoRA.IO;

/// <summary>sha256 of files, as model-risk reviews record them (hex, lower case), streamed so size does not matter.</summary>
public static class FileHashes
{
    public static string Sha256(string file)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>The files an input consists of: the file itself, or every file directly inside a folder (a model
    /// folder's config, weights and tokenizer), in name order.</summary>
    public static IReadOnlyList<string> FilesOf(string path) =>
        File.Exists(path) ? [path]
        : Directory.Exists(path) ? Directory.GetFiles(path).Where(f => Path.GetFileName(f) is not (OutputMarker.FileName or FolderLock.FileName))
            .Order(StringComparer.Ordinal).ToList()
        : [];

    /// <summary>[{path, bytes, sha256}] for every file of <paramref name="path"/>.</summary>
    public static JsonArray Describe(string path)
    {
        var list = new JsonArray();
        foreach (string f in FilesOf(path))
            list.Add(new JsonObject { ["path"] = Path.GetFullPath(f), ["bytes"] = new FileInfo(f).Length, ["sha256"] = Sha256(f) });
        return list;
    }
}
