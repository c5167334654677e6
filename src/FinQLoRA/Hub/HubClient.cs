using System.Text.Json;
using System.Text.RegularExpressions;

namespace FinQLoRA.Hub;

/// <summary>
/// Downloads repositories from the Hugging Face Hub into a local cache and an output folder:
/// list the files of a revision, keep those matching <c>--include</c>, download each (resuming cut downloads,
/// verifying sha256 / git checksums, skipping files already verified in the cache) and link them into the output.
/// </summary>
public sealed partial class HubClient : IDisposable
{
    private const int MaxListingPages = 10_000;

    private readonly HttpClient _client;
    private readonly HubHttp _http;
    private readonly ResumableDownload _download;

    public HubSettings Settings { get; }

    public HubCache Cache { get; }

    /// <param name="handler">For tests or proxies; by default a handler that never decompresses (byte ranges and sizes
    /// refer to the stored bytes) and leaves redirects to <see cref="HubHttp"/>, which decides hop by hop where the
    /// token may go.</param>
    public HubClient(HubSettings settings, HttpMessageHandler? handler = null)
    {
        Settings = settings with { Endpoint = HubSettings.WithTrailingSlash(settings.Endpoint) };
        Cache = new HubCache(settings.CacheRoot);
        handler ??= new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            ConnectTimeout = settings.Retry.IdleTimeout,
        };
        // Timeouts are per read (HubRetryPolicy.IdleTimeout), not per request: a 5 GB shard may take an hour.
        _client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        _client.DefaultRequestHeaders.UserAgent.ParseAdd($"finqlora/{typeof(HubClient).Assembly.GetName().Version}");
        _http = new HubHttp(_client, Settings);
        _download = new ResumableDownload(_http, Cache, Settings);
    }

    /// <summary>Every file of the repo at its revision (folders left out), following the listing's pages.</summary>
    public async Task<IReadOnlyList<HubFile>> ListFilesAsync(HubRepo repo, IHubTransferObserver? observer = null, CancellationToken cancellation = default)
    {
        var files = new List<HubFile>();
        Uri? next = new(Settings.Endpoint, repo.TreeUrl);
        for (int page = 0; next != null; page++)
        {
            if (page == MaxListingPages) throw HubErrors.BadListing(next, $"more than {MaxListingPages} pages");
            Uri url = next;
            var retry = new RetryLoop(Settings, observer, $"listing of {repo}", url);
            while (true)
            {
                try
                {
                    retry.Attempting();
                    using HttpResponseMessage response = await _http.GetAsync(url, 0, repo, null, cancellation);
                    string json = await response.Content.ReadAsStringAsync(cancellation);
                    files.AddRange(ParseListing(url, json));
                    next = NextPage(url, response);
                    break;
                }
                catch (Exception e) when (RetryLoop.IsTransient(e, cancellation))
                {
                    await retry.FailedAsync(e, cancellation);
                }
            }
        }
        return files;
    }

    /// <summary>The verified cached copy of <paramref name="file"/>, downloading it only when the cache lacks it.</summary>
    public async Task<HubFetchedFile> EnsureCachedAsync(HubRepo repo, HubFile file, IHubTransferObserver? observer = null, CancellationToken cancellation = default)
    {
        string cached = Cache.FilePath(repo, file);
        if (Cache.IsVerified(repo, file))
        {
            observer?.FileFinished(file, fromCache: true);
            return new HubFetchedFile(file, cached, FromCache: true);
        }
        string path = await _download.DownloadAsync(repo, file, observer, cancellation);
        observer?.FileFinished(file, fromCache: false);
        return new HubFetchedFile(file, path, FromCache: false);
    }

    /// <summary>
    /// Fetches the files of <paramref name="repo"/> that match any of <paramref name="include"/> (all files when empty)
    /// into <paramref name="outDirectory"/>, keeping the repo's folder layout.
    /// </summary>
    public async Task<HubFetchResult> FetchAsync(HubRepo repo, IReadOnlyList<string> include, string outDirectory, IHubTransferObserver? observer = null, CancellationToken cancellation = default)
    {
        var patterns = include.Select(p => new GlobPattern(p)).ToList();
        IReadOnlyList<HubFile> listed = await ListFilesAsync(repo, observer, cancellation);
        var selected = listed.Where(f => GlobPattern.MatchesAny(patterns, f.Path)).ToList();
        if (selected.Count == 0)
            throw UserInputException.About($"no file of {repo} matches {new ConfigField("include")} {string.Join(' ', include)}; the repo has {listed.Count} files: {string.Join(", ", listed.Take(8).Select(f => HubRepo.Printable(f.Path)))}{(listed.Count > 8 ? ", ..." : "")}");

        // Every selected path is checked before the first download, so a bad name late in the listing cannot leave
        // a half-fetched output behind.
        var relative = selected.Select(f => HubCache.CheckedRelative(repo, f.Path)).ToList();
        string outFull = Path.GetFullPath(outDirectory);
        var fetched = new List<HubFetchedFile>(selected.Count);
        for (int i = 0; i < selected.Count; i++)
        {
            HubFile file = selected[i];
            HubFetchedFile cached = await EnsureCachedAsync(repo, file, observer, cancellation);
            string destination = Path.Combine(outFull, relative[i]);
            LocalPlacement.Place(cached.LocalPath, destination);
            fetched.Add(cached with { LocalPath = destination });
        }
        return new HubFetchResult(repo, outFull, fetched);
    }

    public void Dispose() => _client.Dispose();

    /// <summary>
    /// Parses one page of <c>GET api/{models|datasets}/{id}/tree/{revision}?recursive=true</c>: a JSON array of
    /// <c>{"type":"file"|"directory","path","size","oid","lfs":{"oid":sha256,"size"}}</c>.
    /// </summary>
    internal static IEnumerable<HubFile> ParseListing(Uri url, string json)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw HubErrors.BadListing(url, $"not JSON ({e.Message})"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Array) throw HubErrors.BadListing(url, "expected a JSON array of entries");
            var files = new List<HubFile>();
            int index = 0;
            foreach (JsonElement entry in doc.RootElement.EnumerateArray())
            {
                string where = $"entry {index++}";
                if (entry.ValueKind != JsonValueKind.Object) throw HubErrors.BadListing(url, $"{where} is not an object");
                if (String(entry, "type") != "file") continue;
                string path = String(entry, "path") ?? throw HubErrors.BadListing(url, $"{where} has no 'path'");
                string oid = String(entry, "oid") ?? throw HubErrors.BadListing(url, $"{where} ('{path}') has no 'oid'");
                long size = Number(entry, "size") ?? throw HubErrors.BadListing(url, $"{where} ('{path}') has no 'size'");
                string? sha256 = null;
                if (entry.TryGetProperty("lfs", out JsonElement lfs) && lfs.ValueKind == JsonValueKind.Object)
                {
                    sha256 = String(lfs, "oid");
                    if (sha256 == null || !Sha256Pattern().IsMatch(sha256))
                        throw HubErrors.BadListing(url, $"'{path}' has an LFS entry without a sha256 'oid'");
                    size = Number(lfs, "size") ?? size;
                }
                if (size < 0) throw HubErrors.BadListing(url, $"'{path}' has size {size}");
                files.Add(new HubFile(path, size, oid, sha256?.ToLowerInvariant()));
            }
            return files;
        }
    }

    /// <summary>The Hub pages long listings with <c>Link: &lt;url&gt;; rel="next"</c>.</summary>
    internal static Uri? NextPage(Uri current, HttpResponseMessage response)
    {
        if (!response.Headers.TryGetValues("Link", out var values)) return null;
        foreach (string value in values)
        foreach (Match m in NextLinkPattern().Matches(value))
        {
            // The token's safety does not depend on this URL (HubHttp sends it only to the Hub's origin), but a
            // file:, ftp: or malformed link would fail later with an exception that does not say where it came from.
            if (!Uri.TryCreate(current, m.Groups[1].Value, out Uri? next) || next.Scheme != Uri.UriSchemeHttps && next.Scheme != Uri.UriSchemeHttp)
                throw HubErrors.BadListing(current, $"its next-page link '{HubRepo.Printable(m.Groups[1].Value)}' is not an http(s) URL");
            return next;
        }
        return null;
    }

    private static string? String(JsonElement e, string name) =>
        e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static long? Number(JsonElement e, string name) =>
        e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long n) ? n : null;

    [GeneratedRegex("^[0-9a-fA-F]{64}$")]
    private static partial Regex Sha256Pattern();

    [GeneratedRegex("""<([^>]*)>\s*;\s*rel="?next"?""")]
    private static partial Regex NextLinkPattern();
}
