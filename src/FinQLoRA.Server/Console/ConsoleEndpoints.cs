using FinQLoRA.Server.Common;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace FinQLoRA.Server.ConsolePage;

/// <summary><c>GET /</c> (the console page) and <c>GET /console/{file}</c> (its script and style sheet), from memory.
/// Served without the API key: the files hold no data; the page asks /v1 and /metrics for everything, with the key
/// the user types in.</summary>
internal static class ConsoleEndpoints
{
    /// <summary>Scripts, styles, fetches, images and fonts from this server only; no inline script or style (the page
    /// has none), no plugins, no framing, no form posts anywhere, no &lt;base&gt; rewriting.</summary>
    public const string ContentSecurityPolicy =
        "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    public static void Map(WebApplication app)
    {
        // Read the embedded files now: a build that lost one fails when the server is made, not on a browser's request.
        _ = ConsoleAssets.ByName;
        app.MapGet("/", (HttpContext c) => Serve(c, "index.html"));
        app.MapGet("/console/{file}", (HttpContext c, string file) => Serve(c, file));
    }

    private static IResult Serve(HttpContext context, string file)
    {
        if (!ConsoleAssets.ByName.TryGetValue(file, out var asset))
            throw new ApiException(404, $"no console file '{file}' (the page is at /)", null, "not_found");
        var headers = context.Response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        // Revalidate every time (a 304 while unchanged), so that an upgraded server is never paired with a stale script.
        headers.CacheControl = "no-cache";
        return Results.Bytes(asset.Content, asset.ContentType, entityTag: new EntityTagHeaderValue(asset.ETag));
    }
}
