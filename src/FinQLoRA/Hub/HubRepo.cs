using System.Text.RegularExpressions;

namespace FinQLoRA.Hub;

/// <summary>
/// One repository at one revision on the Hub, e.g. dataset <c>FinGPT/fingpt-sentiment-train</c> at <c>main</c>.
/// Knows the Hub's URL layout:
/// <list type="bullet">
/// <item>listing: <c>api/models/{id}/tree/{revision}?recursive=true</c> (<c>api/datasets/...</c> for datasets);</item>
/// <item>file: <c>{id}/resolve/{revision}/{path}</c> (<c>datasets/{id}/resolve/...</c> for datasets).</item>
/// </list>
/// The revision is one URL segment (<c>refs/pr/1</c> becomes <c>refs%2Fpr%2F1</c>), as huggingface_hub sends it.
/// </summary>
public sealed partial record HubRepo
{
    public HubRepoType Type { get; }
    public string Id { get; }
    public string Revision { get; }

    private HubRepo(HubRepoType type, string id, string revision)
    {
        Type = type;
        Id = id;
        Revision = revision;
    }

    /// <summary>
    /// Validates <paramref name="id"/> (<c>owner/name</c> or a legacy bare <c>name</c>) as the Hub and huggingface_hub's
    /// <c>validate_repo_id</c> do: each part 1 to 96 of <c>A-Z a-z 0-9 _ . -</c>, starting and ending with a letter,
    /// digit or '_' (so <c>a/.</c> and <c>.hidden</c> are refused), no "--" or "..", not ending in ".git"; and the
    /// revision as git's <c>check-ref-format</c> does. Nothing is requested or written before both pass, and both
    /// end up in URLs and cache paths.
    /// </summary>
    public static HubRepo Create(HubRepoType type, string id, string revision = "main")
    {
        string kind = type == HubRepoType.Dataset ? "dataset" : "model";
        if (RepoIdProblem(id) is { } problem)
            throw new UserInputException($"{kind} repo id '{Printable(id)}' is not a Hub repo id ({problem}): expected owner/name, e.g. {(type == HubRepoType.Dataset ? "FinGPT/fingpt-sentiment-train" : "meta-llama/Llama-3.1-8B-Instruct")}");
        if (RevisionProblem(revision) is { } why)
            throw UserInputException.About($"{new ConfigField("revision")} '{Printable(revision)}' is not a branch, tag or commit name ({why}); use e.g. main, v1.0 or refs/pr/1");
        return new HubRepo(type, id, revision);
    }

    internal const int MaxPartLength = 96;

    private static string? RepoIdProblem(string id)
    {
        if (string.IsNullOrEmpty(id)) return "it is empty";
        string[] parts = id.Split('/');
        if (parts.Length > 2) return "more than one '/'";
        foreach (string part in parts)
        {
            if (part.Length == 0) return "an empty part";
            if (part.Length > MaxPartLength) return $"a part of {part.Length} characters; the Hub allows {MaxPartLength}";
            if (!RepoPartPattern().IsMatch(part)) return $"'{Printable(part)}' must be letters, digits, '_', '.' or '-', starting and ending with a letter, digit or '_'";
        }
        if (id.Contains("--") || id.Contains("..")) return "'--' and '..' are not allowed";
        if (id.EndsWith(".git", StringComparison.Ordinal)) return "it ends in '.git'";
        return null;
    }

    /// <summary>git check-ref-format's rules, which the Hub applies to branch and tag names (commit ids pass them).</summary>
    private static string? RevisionProblem(string revision)
    {
        if (string.IsNullOrEmpty(revision)) return "it is empty";
        if (revision.Length > 255) return $"{revision.Length} characters";
        if (revision.Any(c => char.IsControl(c) || c == ' ' || "~^:?*[\\".Contains(c))) return "control characters, spaces and ~ ^ : ? * [ \\ are not allowed";
        if (revision == "@" || revision.Contains("..") || revision.Contains("@{")) return "'@', '..' and '@{' are not allowed";
        if (revision.EndsWith('.')) return "it ends in '.'";
        foreach (string part in revision.Split('/'))
        {
            if (part.Length == 0) return "an empty path component";
            if (part.StartsWith('.')) return $"component '{part}' starts with '.'";
            if (part.EndsWith(".lock", StringComparison.Ordinal)) return $"component '{part}' ends in '.lock'";
        }
        return null;
    }

    /// <summary>Control characters shown escaped, so a message with a newline in the input stays one line.</summary>
    internal static string Printable(string text) =>
        string.Concat(text.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()));

    /// <summary>"model" or "dataset", for messages.</summary>
    public string Kind => Type == HubRepoType.Dataset ? "dataset" : "model";

    /// <summary>Relative URL of the recursive file listing.</summary>
    public string TreeUrl => $"api/{Kind}s/{Id}/tree/{Uri.EscapeDataString(Revision)}?recursive=true";

    /// <summary>Relative URL that serves one file's content (redirecting to a CDN for large files).</summary>
    public string ResolveUrl(string filePath) =>
        $"{(Type == HubRepoType.Dataset ? "datasets/" : "")}{Id}/resolve/{Uri.EscapeDataString(Revision)}/{string.Join('/', filePath.Split('/').Select(Uri.EscapeDataString))}";

    /// <summary>Relative URL of the repo's web page, where gated models' licences are accepted.</summary>
    public string PageUrl => $"{(Type == HubRepoType.Dataset ? "datasets/" : "")}{Id}";

    public override string ToString() => $"{Kind} {Id}@{Revision}";

    [GeneratedRegex(@"^[A-Za-z0-9_]([A-Za-z0-9_.\-]*[A-Za-z0-9_])?$")]
    private static partial Regex RepoPartPattern();
}
