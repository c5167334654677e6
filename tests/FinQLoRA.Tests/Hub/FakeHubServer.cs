using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FinQLoRA.Hub;

namespace FinQLoRA.Tests.Hub;

/// <summary>
/// A tiny HTTP/1.1 server on 127.0.0.1 that speaks the Hub's URL layout:
/// <c>api/{models|datasets}/{id}/tree/{rev}?recursive=true</c> (paged with <c>Link: rel="next"</c>),
/// <c>[datasets/]{id}/resolve/{rev}/{path}</c> (LFS files redirect to <c>/cdn/{sha256}</c> on another host name,
/// <c>localhost</c> instead of <c>127.0.0.1</c>, like the real CDN hop), renamed repos (a same-host 307),
/// byte ranges, Bearer tokens and the Hub's <c>X-Error-Code</c> refusals. Faults are injected per file path:
/// a connection cut after N bytes, corrupt content, a stalled answer. One request per connection, every read
/// bounded by a timeout, and the accept loop stops on dispose.
/// </summary>
internal sealed class FakeHubServer : IAsyncDisposable
{
    public sealed record ServedFile(string Path, byte[] Content, bool Lfs)
    {
        public string Sha256 => Convert.ToHexStringLower(SHA256.HashData(Content));
        public string GitOid => Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {Content.Length}\0"), .. Content]));
    }

    public sealed record Request(string Method, string Target, string? Range, string? Authorization, string? Host = null);

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly ConcurrentDictionary<(string Kind, string Id, string Revision), ServedFile[]> _repos = new();
    private readonly ConcurrentDictionary<string, int> _dropsLeft = new();
    private readonly ConcurrentDictionary<string, int> _dropAfter = new();

    public FakeHubServer()
    {
        _listener.Start();
        Endpoint = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _acceptLoop = AcceptLoopAsync();
    }

    public Uri Endpoint { get; }

    public ConcurrentQueue<Request> Requests { get; } = new();

    /// <summary>When set, every repo request needs <c>Authorization: Bearer {token}</c> (the CDN needs none).</summary>
    public string? RequiredToken { get; set; }

    public int ListingPageSize { get; set; } = 1000;

    public bool IgnoreRange { get; set; }

    /// <summary>The host name the CDN hop goes to: another host than the Hub's 127.0.0.1, on the same server.</summary>
    public string CdnHost => $"localhost:{Endpoint.Port}";

    /// <summary>When set, listing pages link their next page on this host (e.g. <see cref="CdnHost"/>) instead of the Hub's.</summary>
    public string? NextPageHost { get; set; }

    /// <summary>Old repo id → new id: requests for the old one get a same-host 307 to the new one, as the Hub does after a rename.</summary>
    public ConcurrentDictionary<string, string> Renamed { get; } = new();

    public HashSet<string> CorruptPaths { get; } = [];

    public HashSet<string> StalledPaths { get; } = [];

    public void AddRepo(HubRepoType type, string id, string revision, params ServedFile[] files) =>
        _repos[(Kind(type), id, revision)] = files;

    /// <summary>The next <paramref name="times"/> downloads of <paramref name="path"/> are cut after <paramref name="bytes"/> body bytes.</summary>
    public void DropConnection(string path, int bytes, int times)
    {
        _dropAfter[path] = bytes;
        _dropsLeft[path] = times;
    }

    /// <summary>Content requests for one file: resolve hits for small files, CDN hits for LFS files.</summary>
    public List<Request> ContentRequests(ServedFile file) =>
        Requests.Where(r => file.Lfs ? r.Target.StartsWith($"/cdn/{file.Sha256}") : r.Target.Contains("/resolve/") && r.Target.EndsWith("/" + file.Path)).ToList();

    public int ResolveCount => Requests.Count(r => r.Target.Contains("/resolve/"));

    private static string Kind(HubRepoType type) => type == HubRepoType.Dataset ? "datasets" : "models";

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            _ = Task.Run(() => HandleAsync(client));
        }
    }

    private async Task HandleAsync(TcpClient client)
    {
        using (client)
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
        {
            timeout.CancelAfter(TimeSpan.FromSeconds(20));
            try
            {
                NetworkStream stream = client.GetStream();
                (string method, string target, Dictionary<string, string> headers) = await ReadHeadAsync(stream, timeout.Token);
                headers.TryGetValue("Range", out string? range);
                headers.TryGetValue("Authorization", out string? auth);
                headers.TryGetValue("Host", out string? host);
                Requests.Enqueue(new Request(method, target, range, auth, host));
                await RouteAsync(stream, target, range, auth, timeout.Token);
            }
            catch (Exception)
            {
                // A client that went away or a test that ended: nothing to report from the server side.
            }
        }
    }

    private async Task RouteAsync(NetworkStream stream, string target, string? range, string? auth, CancellationToken ct)
    {
        string pathPart = target.Split('?')[0];
        if (pathPart.StartsWith("/cdn/"))
        {
            if (auth != null) { await RespondAsync(stream, 400, "Bad Request", [], "the CDN takes signed URLs, not Authorization headers"u8.ToArray(), ct); return; }
            string sha = pathPart["/cdn/".Length..];
            ServedFile? lfs = _repos.Values.SelectMany(f => f).FirstOrDefault(f => f.Lfs && f.Sha256 == sha);
            if (lfs == null) { await RespondAsync(stream, 404, "Not Found", [], [], ct); return; }
            await ServeContentAsync(stream, lfs, range, ct);
            return;
        }

        foreach (var (from, to) in Renamed)
        {
            string old = $"/{from}/", api = $"/api/models/{from}/";
            if (pathPart.StartsWith(old) || pathPart.StartsWith(api))
            {
                string moved = pathPart.StartsWith(api) ? $"/api/models/{to}/" + target[api.Length..] : $"/{to}/" + target[old.Length..];
                await RespondAsync(stream, 307, "Temporary Redirect", new() { ["Location"] = moved }, [], ct);
                return;
            }
        }

        if (RequiredToken != null && auth != $"Bearer {RequiredToken}")
        {
            var h = new Dictionary<string, string> { ["X-Error-Message"] = auth == null ? "Access to this repo is restricted." : "Invalid credentials in Authorization header" };
            await RespondAsync(stream, 401, "Unauthorized", h, [], ct);
            return;
        }

        if (pathPart.StartsWith("/api/"))
        {
            // /api/{kind}/{id...}/tree/{rev}
            string rest = pathPart["/api/".Length..];
            string kind = rest[..rest.IndexOf('/')];
            rest = rest[(kind.Length + 1)..];
            int tree = rest.IndexOf("/tree/", StringComparison.Ordinal);
            string id = rest[..tree], revision = Uri.UnescapeDataString(rest[(tree + "/tree/".Length)..]);
            if (await RefuseUnknownAsync(stream, kind, id, revision, ct) is not { } files) return;
            int cursor = target.Contains("cursor=") ? int.Parse(target[(target.IndexOf("cursor=") + 7)..]) : 0;
            var page = Listing(files).Skip(cursor).Take(ListingPageSize).ToList();
            var headers = new Dictionary<string, string> { ["Content-Type"] = "application/json" };
            if (cursor + ListingPageSize < Listing(files).Count)
                headers["Link"] = $"<{(NextPageHost is { } nextHost ? $"http://{nextHost}/" : Endpoint.AbsoluteUri)}api/{kind}/{id}/tree/{Uri.EscapeDataString(revision)}?recursive=true&cursor={cursor + ListingPageSize}>; rel=\"next\"";
            await RespondAsync(stream, 200, "OK", headers, JsonSerializer.SerializeToUtf8Bytes(page), ct);
            return;
        }

        {
            // /[datasets/]{id...}/resolve/{rev}/{path...}
            string rest = pathPart[1..];
            string kind = "models";
            if (rest.StartsWith("datasets/")) { kind = "datasets"; rest = rest["datasets/".Length..]; }
            int resolve = rest.IndexOf("/resolve/", StringComparison.Ordinal);
            if (resolve < 0) { await RespondAsync(stream, 404, "Not Found", [], [], ct); return; }
            string id = rest[..resolve];
            string after = rest[(resolve + "/resolve/".Length)..];
            string revision = Uri.UnescapeDataString(after[..after.IndexOf('/')]);
            string path = string.Join('/', after[(after.IndexOf('/') + 1)..].Split('/').Select(Uri.UnescapeDataString));
            if (await RefuseUnknownAsync(stream, kind, id, revision, ct) is not { } files) return;
            ServedFile? file = files.FirstOrDefault(f => f.Path == path);
            if (file == null) { await RespondAsync(stream, 404, "Not Found", new() { ["X-Error-Code"] = "EntryNotFound" }, [], ct); return; }
            if (file.Lfs) { await RespondAsync(stream, 302, "Found", new() { ["Location"] = $"http://{CdnHost}/cdn/{file.Sha256}?signature=abc" }, [], ct); return; }
            await ServeContentAsync(stream, file, range, ct);
        }
    }

    private async Task<ServedFile[]?> RefuseUnknownAsync(NetworkStream stream, string kind, string id, string revision, CancellationToken ct)
    {
        if (_repos.TryGetValue((kind, id, revision), out ServedFile[]? files)) return files;
        bool repoExists = _repos.Keys.Any(k => k.Kind == kind && k.Id == id);
        await RespondAsync(stream, 404, "Not Found", new() { ["X-Error-Code"] = repoExists ? "RevisionNotFound" : "RepoNotFound" }, [], ct);
        return null;
    }

    private static List<object> Listing(ServedFile[] files)
    {
        var entries = new List<object>();
        foreach (string dir in files.Select(f => f.Path).Where(p => p.Contains('/')).Select(p => p[..p.LastIndexOf('/')]).Distinct())
            entries.Add(new Dictionary<string, object> { ["type"] = "directory", ["oid"] = "0000000000000000000000000000000000000000", ["size"] = 0, ["path"] = dir });
        foreach (ServedFile f in files)
        {
            var entry = new Dictionary<string, object> { ["type"] = "file", ["size"] = f.Content.Length, ["path"] = f.Path };
            if (f.Lfs)
            {
                entry["oid"] = Convert.ToHexStringLower(SHA1.HashData(Encoding.ASCII.GetBytes($"pointer {f.Sha256}")));
                entry["lfs"] = new Dictionary<string, object> { ["oid"] = f.Sha256, ["size"] = f.Content.Length, ["pointerSize"] = 134 };
            }
            else entry["oid"] = f.GitOid;
            entries.Add(entry);
        }
        return entries;
    }

    private async Task ServeContentAsync(NetworkStream stream, ServedFile file, string? range, CancellationToken ct)
    {
        if (StalledPaths.Contains(file.Path))
        {
            await Task.Delay(Timeout.Infinite, ct);
            return;
        }
        byte[] content = file.Content;
        if (CorruptPaths.Contains(file.Path))
        {
            content = (byte[])content.Clone();
            content[content.Length / 2] ^= 0xFF;
        }
        long start = 0;
        if (!IgnoreRange && range != null && range.StartsWith("bytes=") && range.EndsWith('-'))
            start = long.Parse(range["bytes=".Length..^1]);
        if (start >= content.Length && content.Length > 0)
        {
            await RespondAsync(stream, 416, "Range Not Satisfiable", new() { ["Content-Range"] = $"bytes */{content.Length}" }, [], ct);
            return;
        }
        byte[] body = content[(int)start..];
        var headers = new Dictionary<string, string> { ["Content-Type"] = "application/octet-stream", ["Accept-Ranges"] = "bytes" };
        if (start > 0) headers["Content-Range"] = $"bytes {start}-{content.Length - 1}/{content.Length}";

        int? cutAfter = null;
        if (_dropsLeft.TryGetValue(file.Path, out int left) && left > 0)
        {
            _dropsLeft[file.Path] = left - 1;
            cutAfter = Math.Min(_dropAfter[file.Path], body.Length - 1);
        }
        await RespondAsync(stream, start > 0 ? 206 : 200, start > 0 ? "Partial Content" : "OK", headers, body, ct, cutAfter);
    }

    /// <summary>Writes a response; with <paramref name="cutAfter"/>, only that many body bytes and then the socket closes.</summary>
    private static async Task RespondAsync(NetworkStream stream, int status, string reason, Dictionary<string, string> headers, byte[] body, CancellationToken ct, int? cutAfter = null)
    {
        var head = new StringBuilder($"HTTP/1.1 {status} {reason}\r\n");
        foreach (var (k, v) in headers) head.Append($"{k}: {v}\r\n");
        head.Append($"Content-Length: {body.Length}\r\nConnection: close\r\n\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()), ct);
        await stream.WriteAsync(body.AsMemory(0, cutAfter ?? body.Length), ct);
        await stream.FlushAsync(ct);
    }

    private static async Task<(string Method, string Target, Dictionary<string, string> Headers)> ReadHeadAsync(NetworkStream stream, CancellationToken ct)
    {
        var bytes = new List<byte>();
        var buffer = new byte[1];
        while (bytes.Count < 16_384)
        {
            if (await stream.ReadAsync(buffer, ct) == 0) throw new IOException("client closed before sending a request");
            bytes.Add(buffer[0]);
            if (bytes.Count >= 4 && bytes[^4] == '\r' && bytes[^3] == '\n' && bytes[^2] == '\r' && bytes[^1] == '\n') break;
        }
        string[] lines = Encoding.ASCII.GetString([.. bytes]).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        string[] requestLine = lines[0].Split(' ');
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (string line in lines.Skip(1))
            if (line.IndexOf(':') is int colon and > 0) headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        return (requestLine[0], requestLine[1], headers);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _acceptLoop.WaitAsync(TimeSpan.FromSeconds(5)); } catch (Exception) { }
        _stop.Dispose();
    }
}
