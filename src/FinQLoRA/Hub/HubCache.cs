using FinQLoRA.IO;

namespace FinQLoRA.Hub;

/// <summary>
/// The local download cache, keyed by repo type / repo / revision / path:
/// <code>
/// {root}/datasets/FinGPT/fingpt-sentiment-train/main/files/data/train.parquet             verified content
/// {root}/datasets/FinGPT/fingpt-sentiment-train/main/files/data/train.parquet.incomplete  a download in progress
/// {root}/datasets/FinGPT/fingpt-sentiment-train/main/verified/data/train.parquet.oid      checksum it was verified against
/// </code>
/// A branch such as <c>main</c> moves, so a cached file counts only while its recorded checksum equals the
/// one in the current listing; the <c>.oid</c> marker is written after verification, so a file without it is
/// never trusted unchecked.
/// </summary>
public sealed class HubCache(string root)
{
    public string Root { get; } = Path.GetFullPath(root);

    public string RevisionDirectory(HubRepo repo) =>
        Path.Combine([Root, repo.Type == HubRepoType.Dataset ? "datasets" : "models", .. repo.Id.Split('/'), Uri.EscapeDataString(repo.Revision)]);

    /// <summary>Where the verified content of <paramref name="file"/> lives.</summary>
    public string FilePath(HubRepo repo, HubFile file) => Path.Combine(RevisionDirectory(repo), "files", CheckedRelative(repo, file.Path));

    /// <summary>The partial download that a cut connection or an earlier run left behind.</summary>
    public string PartialPath(HubRepo repo, HubFile file) => FilePath(repo, file) + ".incomplete";

    private string MarkerPath(HubRepo repo, HubFile file) => Path.Combine(RevisionDirectory(repo), "verified", CheckedRelative(repo, file.Path) + ".oid");

    private string PartialMarkerPath(HubRepo repo, HubFile file) => MarkerPath(repo, file) + ".incomplete";

    /// <summary>True when the cached file was verified against the checksum the listing gives now.</summary>
    public bool IsVerified(HubRepo repo, HubFile file)
    {
        var info = new FileInfo(FilePath(repo, file));
        string marker = MarkerPath(repo, file);
        return info.Exists && info.Length == file.Size && File.Exists(marker) && File.ReadAllText(marker).Trim() == file.ContentId;
    }

    internal void MarkVerified(HubRepo repo, HubFile file) => AtomicFile.WriteAllText(MarkerPath(repo, file), file.ContentId);

    internal void ForgetVerified(HubRepo repo, HubFile file)
    {
        string marker = MarkerPath(repo, file);
        if (File.Exists(marker)) File.Delete(marker);
    }

    /// <summary>
    /// Keeps a partial download only when it belongs to the same content (a branch may have moved since it was
    /// started), so resuming never glues two versions of a file together.
    /// </summary>
    internal void PreparePartial(HubRepo repo, HubFile file)
    {
        string partial = PartialPath(repo, file), marker = PartialMarkerPath(repo, file);
        bool same = File.Exists(marker) && File.ReadAllText(marker).Trim() == file.ContentId;
        if (!same && File.Exists(partial)) File.Delete(partial);
        if (!same) AtomicFile.WriteAllText(marker, file.ContentId);
        Directory.CreateDirectory(Path.GetDirectoryName(partial)!);
    }

    internal void ForgetPartial(HubRepo repo, HubFile file)
    {
        string partial = PartialPath(repo, file), marker = PartialMarkerPath(repo, file);
        if (File.Exists(partial)) File.Delete(partial);
        if (File.Exists(marker)) File.Delete(marker);
    }

    /// <summary>
    /// Listing paths come from the network: refuse any that would escape the cache folder (absolute, '..', '\\'),
    /// or that hold control characters — a newline in a file name breaks every listing and log that shows it.
    /// </summary>
    internal static string CheckedRelative(HubRepo repo, string path)
    {
        string[] parts = path.Split('/');
        if (path.Length == 0 || path.StartsWith('/') || path.Contains('\\') || path.Any(char.IsControl)
            || parts.Any(p => p.Length == 0 || p == "." || p == ".."))
            throw new UserInputException($"the Hub listing of {repo} names an unsafe file path '{HubRepo.Printable(path)}'; refusing to write it (check HF_ENDPOINT points at a real Hub)");
        return Path.Combine(parts);
    }
}
