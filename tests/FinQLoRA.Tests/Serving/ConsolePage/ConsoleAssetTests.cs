using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.RegularExpressions;
using FinQLoRA.Server.ConsolePage;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving.ConsolePage;

/// <summary>
/// The console page's files as a real server behind a key serves them: from memory, byte for byte what the repository
/// holds, with their content types and a self-only Content-Security-Policy, without the key (while /v1 still wants it);
/// and nothing in them points at another origin.
/// </summary>
public sealed class ConsoleAssetTests(ConsoleFixture f) : IClassFixture<ConsoleFixture>
{
    private static string SourceFolder => Path.Combine(Shared.RepoRoot, "src", "FinQLoRA.Server", "Console");

    [Theory]
    [InlineData("/", "index.html", "text/html")]
    [InlineData("/console/index.html", "index.html", "text/html")]
    [InlineData("/console/app.js", "app.js", "text/javascript")]
    [InlineData("/console/app.css", "app.css", "text/css")]
    public async Task EachFileIsServedWithoutTheKeyWithItsContentTypeAndPolicy(string path, string file, string mediaType)
    {
        using var anonymous = new HttpClient { BaseAddress = f.Url };
        using var response = await anonymous.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(mediaType, response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("utf-8", response.Content.Headers.ContentType.CharSet);
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(SourceFolder, file)), await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(ConsoleEndpoints.ContentSecurityPolicy, Assert.Single(response.Headers.GetValues("Content-Security-Policy")));
        Assert.Contains("default-src 'self'", ConsoleEndpoints.ContentSecurityPolicy);
        Assert.Equal("nosniff", Assert.Single(response.Headers.GetValues("X-Content-Type-Options")));

        // The data behind the page still needs the key.
        using var models = await anonymous.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, models.StatusCode);
    }

    [Fact]
    public async Task AnUnchangedFileIsRevalidatedWith304()
    {
        using var first = await f.Http.GetAsync("/console/app.js");
        var etag = first.Headers.ETag!;
        using var request = new HttpRequestMessage(HttpMethod.Get, "/console/app.js");
        request.Headers.IfNoneMatch.Add(new EntityTagHeaderValue(etag.Tag));
        using var second = await f.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.NotModified, second.StatusCode);
        Assert.Empty(await second.Content.ReadAsByteArrayAsync());
    }

    [Theory]
    [InlineData("/console/secrets.json")]
    [InlineData("/console/FinQLoRA.Server.dll")]
    [InlineData("/console/..%2Fappsettings.json")]
    public async Task AnythingElseUnderConsoleIs404(string path)
    {
        using var anonymous = new HttpClient { BaseAddress = f.Url };
        using var response = await anonymous.GetAsync(path);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    /// <summary>Every page file in the source folder is embedded and served (a file added to the folder but not to the
    /// csproj would be missing from the server), and nothing else is.</summary>
    [Fact]
    public void EveryPageFileOfTheFolderIsEmbedded()
    {
        var onDisk = Directory.GetFiles(SourceFolder).Select(Path.GetFileName).Where(n => !n!.EndsWith(".cs", StringComparison.Ordinal)).Order();
        Assert.Equal(onDisk, ConsoleAssets.ByName.Keys.Order());
    }

    /// <summary>The page loads nothing from elsewhere: no absolute or protocol-relative URL anywhere in its files, every
    /// src/href in the HTML is one of the served files, and every path the script calls is on the page's own origin.</summary>
    [Fact]
    public void NoFileReferencesAnotherOrigin()
    {
        foreach (var asset in ConsoleAssets.ByName.Values)
        {
            string text = Encoding.UTF8.GetString(asset.Content);
            Assert.DoesNotMatch(new Regex(@"(?i)\b(https?|wss?|ftp|file|javascript):|\bdata:[a-z]+/"), text);
            Assert.DoesNotMatch(new Regex(@"[""'(=]\s*//"), text); // protocol-relative: "//cdn.example"
            Assert.DoesNotMatch(new Regex(@"(?i)@import|<iframe|<object|<embed|\bimportScripts\b|\beval\("), text);
        }
        string html = Encoding.UTF8.GetString(ConsoleAssets.ByName["index.html"].Content);
        var references = Regex.Matches(html, @"\b(?:src|href)\s*=\s*""([^""]*)""").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(["/console/app.css", "/console/app.js"], references.Order());
        Assert.DoesNotMatch(new Regex(@"(?i)\bstyle\s*=|<style|<script>|\bon[a-z]+\s*="), html); // nothing inline for the CSP to refuse

        string script = Encoding.UTF8.GetString(ConsoleAssets.ByName["app.js"].Content);
        var calls = Regex.Matches(script, @"\b(?:api|postJson|fetch)\(\s*""([^""]*)""").Select(m => m.Groups[1].Value).ToList();
        Assert.NotEmpty(calls);
        Assert.All(calls, path => Assert.Matches(@"^/(v1/|metrics$)", path));
        Assert.DoesNotMatch(new Regex(@"\b(localStorage|sessionStorage|indexedDB)\s*[.[]|document\.cookie|caches\."), script); // the key stays in memory
        Assert.DoesNotMatch(new Regex(@"\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write"), script); // server text is text
    }
}
