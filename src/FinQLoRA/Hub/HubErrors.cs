using System.Net;

namespace FinQLoRA.Hub;

/// <summary>
/// Turns Hub failures into one-line messages that say what to do. The Hub explains refusals in the
/// <c>X-Error-Code</c> header (<c>RepoNotFound</c>, <c>RevisionNotFound</c>, <c>EntryNotFound</c>, <c>GatedRepo</c>);
/// note that it answers 401, not 404, for a repo that does not exist when no token is sent, so that private
/// repos cannot be probed.
/// </summary>
internal static class HubErrors
{
    public static bool IsTransient(HttpStatusCode status) =>
        status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)status >= 500;

    public static UserInputException ForStatus(HttpResponseMessage response, HubRepo repo, string? filePath, HubSettings settings)
    {
        int code = (int)response.StatusCode;
        string errorCode = Header(response, "X-Error-Code");
        string page = new Uri(settings.Endpoint, repo.PageUrl).AbsoluteUri;
        string licence = repo.Type == HubRepoType.Model ? "accept the model's licence" : "accept the dataset's terms";
        bool hasToken = settings.Token != null;

        if (code is 401 or 403 && !hasToken)
            return new($"{repo} needs authentication (HTTP {code}{Detail(errorCode)}): set HF_TOKEN to a Hugging Face access token (https://huggingface.co/settings/tokens) and {licence} on the Hub at {page}; also check the repo name");
        if (code is 401 && errorCode != "GatedRepo")
            return new($"{repo}: HF_TOKEN was refused (HTTP 401{Detail(errorCode)}): check that the token is valid and has read access, and that the repo name is right ({page})");
        if (code is 401 or 403)
            return new($"{repo}: the account of HF_TOKEN has no access (HTTP {code}{Detail(errorCode)}): {licence} on the Hub at {page} with that account and wait for approval, or use a token with read access");
        if (code == 404 && errorCode == "RevisionNotFound")
            return UserInputException.About($"revision '{repo.Revision}' not found in {repo.Kind} {repo.Id} (HTTP 404): check {new ConfigField("revision")} (a branch, tag or commit of {page})");
        if (code == 404 && filePath != null && errorCode != "RepoNotFound")
            return new($"file '{filePath}' not found in {repo} (HTTP 404{Detail(errorCode)}): the repo changed since it was listed; rerun the fetch");
        if (code == 404)
            return UserInputException.About($"{repo.Kind} repo '{repo.Id}' or revision '{repo.Revision}' not found at {settings.Endpoint.AbsoluteUri} (HTTP 404{Detail(errorCode)}): check the repo name{(repo.Type == HubRepoType.Dataset ? " (models use `model fetch`)" : " (datasets use `data fetch`)")} and {new ConfigField("revision")}");
        string message = Header(response, "X-Error-Message");
        return new($"{repo}: the Hub refused {response.RequestMessage?.RequestUri} with HTTP {code} {response.ReasonPhrase}{(message.Length > 0 ? ": " + message : "")}");
    }

    public static UserInputException Unreachable(Uri url, int attempts, TimeSpan elapsed, string reason, HubSettings settings) =>
        new($"could not fetch {url} after {attempts} attempts in {elapsed.TotalSeconds:F0}s ({OneLine(reason)}): check the network connection, a proxy, or HF_ENDPOINT (now {settings.Endpoint.AbsoluteUri})");

    public static UserInputException ChecksumMismatch(HubRepo repo, HubFile file, string algorithm, string actual) =>
        new($"{algorithm} mismatch for '{file.Path}' of {repo}: expected {file.ContentId}, got {actual}; the download was deleted, rerun to fetch it again (if it repeats, the server at HF_ENDPOINT serves other content than it lists)");

    public static UserInputException SizeMismatch(HubRepo repo, HubFile file, long actual) =>
        new($"size mismatch for '{file.Path}' of {repo}: the listing says {file.Size} bytes, the server sent {actual}; the download was deleted, rerun to fetch it again");

    public static UserInputException BadListing(Uri url, string problem) =>
        new($"unexpected file listing from {url}: {problem}; check that HF_ENDPOINT points at a Hugging Face Hub");

    public static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();

    private static string Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? OneLine(string.Join(" ", values)) : "";

    private static string Detail(string errorCode) => errorCode.Length > 0 ? ", " + errorCode : "";
}
