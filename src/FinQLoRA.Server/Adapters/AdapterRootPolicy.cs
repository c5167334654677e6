using FinQLoRA.Adapters;
using FinQLoRA.Server.Common;

namespace FinQLoRA.Server.Adapters;

/// <summary>
/// Where a runtime adapter may be loaded from: only a folder under the adapter root, after every symbolic link on the
/// way (the folder, its parents, its two files) is resolved. A path that walks out of the root by <c>..</c> or by a link
/// is refused, whatever it points at.
/// </summary>
internal sealed class AdapterRootPolicy
{
    private readonly string _root;

    public AdapterRootPolicy(string root) => _root = RealPath(Path.GetFullPath(root));

    /// <returns>the adapter folder with links resolved</returns>
    public string Resolve(string requested)
    {
        // The file system's own refusals of a name (a NUL, a name too long for it) are the client's error, not ours.
        if (requested.Contains('\0')) throw new ApiException(400, "lora_path must not hold a NUL character", "lora_path");
        string real;
        try { real = RealPath(Path.GetFullPath(Path.IsPathRooted(requested) ? requested : Path.Combine(_root, requested))); }
        catch (Exception e) when (e is IOException or ArgumentException or NotSupportedException)
        {
            throw new ApiException(400, $"lora_path is not a usable path ({e.GetType().Name})", "lora_path");
        }
        if (!Inside(real)) throw Outside(requested);
        if (!Directory.Exists(real)) throw new ApiException(400, $"lora_path '{requested}': no such adapter folder under the adapter root", "lora_path");
        foreach (string file in new[] { PeftAdapterConfig.FileName, PeftAdapterFiles.WeightsFileName })
        {
            string path = Path.Combine(real, file);
            if (File.Exists(path) && !Inside(RealPath(path))) throw Outside(requested);
        }
        return real;
    }

    private bool Inside(string path) =>
        path == _root || path.StartsWith(_root.EndsWith(Path.DirectorySeparatorChar) ? _root : _root + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    private static ApiException Outside(string requested) =>
        new(400, $"lora_path '{requested}' is outside the adapter root; adapters load only from under --adapter-root", "lora_path");

    /// <summary>The path with every symbolic link along it resolved (like realpath(3)); missing tails are kept as they are.</summary>
    private static string RealPath(string full, int depth = 0)
    {
        if (depth > 40) throw new ApiException(400, "too many levels of symbolic links", "lora_path");
        string current = Path.GetPathRoot(full)!;
        foreach (string part in full[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Combine(current, part);
            var info = new FileInfo(next);
            if (info.LinkTarget is not null)
            {
                string target = Path.GetFullPath(info.LinkTarget, current);
                next = RealPath(target, depth + 1);
            }
            current = next;
        }
        return current;
    }
}
