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

    /// <summary>Validates <paramref name="id"/> (<c>owner/name</c> or a legacy bare <c>name</c>) and the revision.</summary>
    public static HubRepo Create(HubRepoType type, string id, string revision = "main")
    {
        string kind = type == HubRepoType.Dataset ? "dataset" : "model";
        if (string.IsNullOrWhiteSpace(id) || !RepoIdPattern().IsMatch(id) || id.Contains(".."))
            throw new UserInputException($"{kind} repo id '{id}' is not a Hub repo id: expected owner/name, e.g. {(type == HubRepoType.Dataset ? "FinGPT/fingpt-sentiment-train" : "meta-llama/Llama-3.1-8B-Instruct")}");
        if (string.IsNullOrWhiteSpace(revision) || revision.Any(char.IsControl) || revision.Contains(".."))
            throw new UserInputException($"--revision '{revision}' is not a branch, tag or commit name; use e.g. main");
        return new HubRepo(type, id, revision);
    }

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

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9_.\-]+)?$")]
    private static partial Regex RepoIdPattern();
}
