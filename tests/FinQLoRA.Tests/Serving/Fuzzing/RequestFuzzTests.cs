using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace FinQLoRA.Tests.Serving.Fuzzing;

/// <summary>
/// The server's contract for whatever a client sends: no request gets a 5xx, and every refusal (4xx) is OpenAI's error
/// object. A seeded run of <see cref="RequestFuzzer"/> over every route (<see cref="FuzzedEndpoints"/>); rerun a
/// failure with <c>FINQLORA_FUZZ_SEED=S</c> (and more requests with <c>FINQLORA_FUZZ_REQUESTS=N</c>). Then lone
/// surrogate escapes field by field: each is a 400 naming its field, and a valid surrogate pair in the same place is not.
/// </summary>
public sealed class RequestFuzzTests(FuzzServeFixture f, ITestOutputHelper output) : IClassFixture<FuzzServeFixture>, IDisposable
{
    /// <summary>A client without the fixture's default key: each fuzzed request carries its own (or none).</summary>
    private readonly HttpClient _bare = new() { BaseAddress = f.Url, Timeout = TimeSpan.FromMinutes(2) };

    public void Dispose() => _bare.Dispose();

    private const long DefaultSeed = 24;
    private const int DefaultRequests = 400;

    [Fact]
    public async Task FuzzedRequestsGetNo5xxAndEveryRefusalIsOpenAisErrorObject()
    {
        long seed = long.TryParse(Environment.GetEnvironmentVariable("FINQLORA_FUZZ_SEED"), CultureInfo.InvariantCulture, out long s) ? s : DefaultSeed;
        int count = int.TryParse(Environment.GetEnvironmentVariable("FINQLORA_FUZZ_REQUESTS"), CultureInfo.InvariantCulture, out int n) ? n : DefaultRequests;
        output.WriteLine($"request fuzzer: seed {seed}, {count} requests (rerun with FINQLORA_FUZZ_SEED={seed} FINQLORA_FUZZ_REQUESTS={count})");
        var endpoints = FuzzedEndpoints.For(f);
        var fuzzer = new RequestFuzzer(endpoints, FuzzServeFixture.Key, FuzzServeFixture.MaxBodyBytes);
        var failures = new List<string>();
        var statuses = new SortedDictionary<string, SortedDictionary<int, int>>(StringComparer.Ordinal);
        int damaged = 0;
        for (int i = 0; i < count; i++)
        {
            var request = fuzzer.Make(seed, i);
            if (request.Damage.Count > 0) damaged++;
            var (status, problem) = await SendAsync(request);
            var row = statuses.TryGetValue(request.Endpoint.ToString(), out var x) ? x : statuses[request.Endpoint.ToString()] = [];
            row[status] = row.GetValueOrDefault(status) + 1;
            if (problem is not null) failures.Add($"{problem}\n  {request}");
        }
        foreach (var (endpoint, row) in statuses)
            output.WriteLine($"{endpoint,-32} {string.Join(", ", row.Select(kv => $"{kv.Value}× {kv.Key}"))}");
        output.WriteLine($"{damaged} of {count} requests damaged, {count - damaged} valid");
        foreach (string failure in failures) output.WriteLine(failure);

        // the server is still whole: alive and answering a valid request
        Assert.Equal(HttpStatusCode.OK, (await f.Http.GetAsync("/health")).StatusCode);
        var after = await f.Http.PostAsync("/v1/completions", Json($$"""{"model":"{{FuzzServeFixture.BaseName}}","prompt":"Once upon a time","max_tokens":2}"""));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.True(failures.Count == 0,
            $"seed {seed}: {failures.Count} of {count} requests failed (rerun with FINQLORA_FUZZ_SEED={seed} FINQLORA_FUZZ_REQUESTS={count}); the first:\n"
            + string.Join("\n", failures.Take(5)));
        // the run reached the engine and refused too, or it proved little
        Assert.Contains(statuses.Values.SelectMany(r => r.Keys), c => c == 200);
        Assert.Contains(statuses.Values.SelectMany(r => r.Keys), c => c == 400);
    }

    /// <summary>Each string of each endpoint's valid bodies (values and field names) gets a lone surrogate escape:
    /// a 400 whose <c>param</c> is that field; the same place with a valid pair (😀) is not refused for it.</summary>
    [Fact]
    public async Task ALoneSurrogateInAnyStringFieldIsA400NamingIt()
    {
        int checkedStrings = 0;
        var failures = new List<string>();
        foreach (var endpoint in FuzzedEndpoints.For(f).Where(e => e.ValidBody is not null))
        {
            // the fields of several valid bodies: each draws its optional fields at random
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (int seed = 0; seed < 12; seed++)
            {
                var body = endpoint.ValidBody!(new Random(seed));
                foreach (var (at, isName) in StringPlaces(body))
                {
                    if (!seen.Add((isName ? "name:" : "") + at)) continue;
                    int escape = checkedStrings++ % LoneSurrogates.Escapes.Length;
                    string lone = Marked(body, at, isName, LoneSurrogates.Marker(escape));
                    string expected = isName ? at + LoneSurrogates.Escapes[escape] : at;
                    var (status, error) = await PostAsync(endpoint.Route, LoneSurrogates.Apply(lone));
                    if (status != 400 || error?["param"]?.GetValue<string>() != expected || error?["message"]?.GetValue<string>().Contains("lone UTF-16 surrogate", StringComparison.Ordinal) != true)
                        failures.Add($"{endpoint} {(isName ? "name of " : "")}{at} + {LoneSurrogates.Escapes[escape]}: {status} {error?.ToJsonString()} (expected 400 naming {expected})");
                    var (pairStatus, pairError) = await PostAsync(endpoint.Route, LoneSurrogates.Apply(Marked(body, at, isName, LoneSurrogates.ValidPairMarker)));
                    if (pairStatus >= 500 || pairError?["message"]?.GetValue<string>().Contains("surrogate", StringComparison.Ordinal) == true)
                        failures.Add($"{endpoint} {at} + a valid pair: {pairStatus} {pairError?.ToJsonString()}");
                }
            }
        }
        output.WriteLine($"{checkedStrings} strings checked");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(checkedStrings > 40, $"only {checkedStrings} strings checked"); // the bodies hold the fields the brief lists
    }

    /// <summary>A schema sent as a string is parsed a second time: a lone surrogate escaped inside it (the outer string
    /// itself valid) is named by its path within the schema.</summary>
    [Fact]
    public async Task ALoneSurrogateInsideASchemaSentAsAStringIsNamedByItsPath()
    {
        string body = $$$$"""
            {"model":"{{{{FuzzServeFixture.BaseName}}}}","prompt":"x","max_tokens":2,
             "structured_outputs":{"json":"{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"string\",\"pattern\":\"[a-c]+\\ud800\"}}}"}}
            """;
        var (status, error) = await PostAsync("/v1/completions", Encoding.UTF8.GetBytes(body));
        Assert.Equal(400, status);
        Assert.Equal("structured_outputs.json.properties.k.pattern", error!["param"]!.GetValue<string>());
        Assert.Contains("lone UTF-16 surrogate", error["message"]!.GetValue<string>());
    }

    /// <summary>What earlier runs found, kept as plain cases: each was a 500 and is a 400 naming the field.</summary>
    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"tiny-fuzz","messages":[{"role":"user","content":[{"type":0.5,"text":"x"}]}],"max_tokens":1}""", "messages[0].content", "only text parts")]
    [InlineData("/v1/chat/completions", """{"model":"tiny-fuzz","messages":[{"role":"user","content":[{"type":{},"text":"x"}]}],"max_tokens":1}""", "messages[0].content", "only text parts")]
    [InlineData("/v1/load_lora_adapter", """{"lora_name":"fuzzed","lora_path":"a\u0000b"}""", "lora_path", "NUL")]
    [InlineData("/v1/completions", """{"model":"tiny-fuzz\ud800","prompt":"x","max_tokens":1}""", "model", "lone UTF-16 surrogate")]
    [InlineData("/v1/completions", """{"model":"tiny-fuzz","prompt":"x","max_tokens":1,"stop":["ok","\udc00abc"]}""", "stop[1]", "lone UTF-16 surrogate")]
    public async Task FoundByTheFuzzerAndNowA400NamingTheField(string route, string body, string param, string why)
    {
        var (status, error) = await PostAsync(route, Encoding.UTF8.GetBytes(body));
        Assert.Equal(400, status);
        Assert.Equal(param, error!["param"]!.GetValue<string>());
        Assert.Contains(why, error["message"]!.GetValue<string>());
    }

    /// <summary>A body over the limit is answered 413 with <c>Connection: close</c>: it is left unread and the
    /// connection dropped, and a client that reused it met a reset on its next request.</summary>
    [Fact]
    public async Task ABodyOverTheLimitIsA413ThatClosesTheConnection()
    {
        string body = $$"""{"model":"{{new string('m', FuzzServeFixture.MaxBodyBytes)}}"}""";
        using var response = await f.Http.PostAsync("/v1/completions", Json(body));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.True(response.Headers.ConnectionClose, "no Connection: close");
        Assert.Null(ErrorObjectProblem(response, await response.Content.ReadAsStringAsync()));
    }

    /// <summary>A path that looks like a file name is no route either: the error object, not routing's bare 404 (the
    /// default fallback pattern skipped such paths; the fuzzer's <c>/v1/..%2F..%2Ftokenize</c> found it).</summary>
    [Theory]
    [InlineData("GET", "/v1/tokenize.json")]
    [InlineData("POST", "/v1/..%2F..%2Fcompletions")]
    [InlineData("GET", "/static/app.js")]
    public async Task AFileLikePathIsA404WithTheErrorObject(string method, string path)
    {
        using var response = await f.Http.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Null(ErrorObjectProblem(response, await response.Content.ReadAsStringAsync()));
    }

    /// <summary>Why the check exists: System.Text.Json parses a lone surrogate escape and only refuses it when the
    /// string is read (so a handler, not the parser, would meet it).</summary>
    [Fact]
    public void SystemTextJsonParsesALoneSurrogateEscapeAndRefusesToReadIt()
    {
        using var doc = JsonDocument.Parse("""{"model":"\ud800","ok":"\ud83d\ude00"}""");
        Assert.Equal("😀", doc.RootElement.GetProperty("ok").GetString());
        Assert.Throws<InvalidOperationException>(() => doc.RootElement.GetProperty("model").GetString());
    }

    private async Task<(int Status, string? Problem)> SendAsync(FuzzedRequest request)
    {
        try
        {
            using var message = request.ToMessage();
            using var response = await _bare.SendAsync(message);
            int status = (int)response.StatusCode;
            string text = await response.Content.ReadAsStringAsync();
            if (request.KestrelRefuses)
                return (status, status == 400 && text.Length == 0 ? null : $"status {status} where Kestrel refuses the request line: {Cut(text)}");
            if (status >= 500) return (status, $"status {status}: {Cut(text)}");
            if (status >= 400) return (status, ErrorObjectProblem(response, text) is { } p ? $"status {status}: {p}" : null);
            if (response.Content.Headers.ContentType?.MediaType == "text/event-stream" && text.Contains("\"error\"", StringComparison.Ordinal))
                return (status, $"status {status}, an error inside the stream: {Cut(text)}");
            return (status, null);
        }
        catch (HttpRequestException e)
        {
            // Kestrel closes the connection after its 400, which a body still being sent may meet first.
            return (0, request.KestrelRefuses ? null : $"no answer: {e.Message} {e.InnerException?.Message} {e.InnerException?.InnerException?.Message}");
        }
    }

    /// <summary>Why a 4xx body is not OpenAI's error object <c>{"error": {"message", "type", "param", "code"}}</c>
    /// (message and type non-empty strings, param and code strings or null); null when it is.</summary>
    private static string? ErrorObjectProblem(HttpResponseMessage response, string text)
    {
        if (response.Content.Headers.ContentType?.MediaType != "application/json")
            return $"content type {response.Content.Headers.ContentType?.ToString() ?? "(none)"}, body {Cut(text)}";
        JsonNode? body;
        try { body = JsonNode.Parse(text); }
        catch (JsonException) { return $"body is not JSON: {Cut(text)}"; }
        if (body is not JsonObject { Count: 1 } root || root["error"] is not JsonObject error) return $"body is not {{\"error\": {{…}}}}: {Cut(text)}";
        static bool NonEmptyString(JsonNode? n) => n is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0;
        static bool StringOrNull(JsonObject o, string key) => o.ContainsKey(key) && (o[key] is null || o[key] is JsonValue v && v.TryGetValue<string>(out _));
        if (!NonEmptyString(error["message"]) || !NonEmptyString(error["type"]) || !StringOrNull(error, "param") || !StringOrNull(error, "code"))
            return $"error object lacks message/type/param/code: {Cut(text)}";
        return null;
    }

    private async Task<(int Status, JsonNode? Error)> PostAsync(string route, byte[] body)
    {
        using var response = await f.Http.PostAsync(route, new ByteArrayContent(body) { Headers = { { "Content-Type", "application/json" } } });
        string text = await response.Content.ReadAsStringAsync();
        JsonNode? error = null;
        if ((int)response.StatusCode >= 400)
            try { error = JsonNode.Parse(text)?["error"]; }
            catch (JsonException) { }
        return ((int)response.StatusCode, error);
    }

    /// <summary>Every string value's path in <paramref name="body"/> (isName false) and every field name's (true).</summary>
    private static List<(string At, bool IsName)> StringPlaces(JsonObject body)
    {
        var places = new List<(string, bool)>();
        void Walk(JsonNode? node, string at)
        {
            switch (node)
            {
                case JsonObject o:
                    foreach (var (name, value) in o)
                    {
                        string child = at.Length == 0 ? name : $"{at}.{name}";
                        places.Add((child, true));
                        Walk(value, child);
                    }
                    break;
                case JsonArray a:
                    for (int i = 0; i < a.Count; i++) Walk(a[i], $"{at}[{i}]");
                    break;
                case JsonValue v when v.TryGetValue<string>(out _):
                    places.Add((at, false));
                    break;
            }
        }
        Walk(body, "");
        return places;
    }

    /// <summary>The body serialized with <paramref name="marker"/> appended to the string at <paramref name="at"/> (or
    /// to the name of the field there).</summary>
    private static string Marked(JsonObject body, string at, bool isName, string marker)
    {
        var copy = JsonNode.Parse(body.ToJsonString())!.AsObject();
        var (parent, key) = Locate(copy, at);
        if (isName)
        {
            var o = (JsonObject)parent;
            var value = o[(string)key];
            o.Remove((string)key);
            o[(string)key + marker] = value;
        }
        else if (parent is JsonObject o) o[(string)key] = o[(string)key]!.GetValue<string>() + marker;
        else parent[(int)key] = parent[(int)key]!.GetValue<string>() + marker;
        return copy.ToJsonString();
    }

    /// <summary>The parent and key of a path <c>a.b[1].c</c>.</summary>
    private static (JsonNode Parent, object Key) Locate(JsonObject root, string at)
    {
        var steps = new List<object>();
        foreach (string part in at.Split('.'))
        {
            int bracket = part.IndexOf('[');
            steps.Add(bracket < 0 ? part : part[..bracket]);
            if (bracket >= 0)
                foreach (string index in part[(bracket + 1)..].TrimEnd(']').Split("]["))
                    steps.Add(int.Parse(index, CultureInfo.InvariantCulture));
        }
        JsonNode node = root;
        for (int i = 0; i < steps.Count - 1; i++) node = steps[i] is string name ? node[name]! : node[(int)steps[i]]!;
        return (node, steps[^1]);
    }

    private static StringContent Json(string text) => new(text, Encoding.UTF8, "application/json");

    private static string Cut(string text) => text.Length > 300 ? text[..300] + "…" : text;
}
