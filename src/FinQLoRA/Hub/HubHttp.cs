using System.Net;
using System.Net.Http.Headers;

namespace FinQLoRA.Hub;

/// <summary>
/// Sends one GET to the Hub with an optional byte range, following redirects itself, and sorts the answer.
/// The token goes only to the Hub's own origin (<see cref="HubSettings.Endpoint"/>'s scheme, host and port): on the
/// first request, on a listing's <c>Link: rel="next"</c> page and on each redirect hop, it is attached or left off
/// by where that hop goes — so a CDN, a next-page URL or a redirect on another host never sees it, while a
/// redirect the Hub makes to itself (a renamed repo) keeps it, as huggingface_hub does.
/// </summary>
internal sealed class HubHttp(HttpClient client, HubSettings settings)
{
    /// <summary>As many hops as the default handler would follow.</summary>
    internal const int MaxRedirects = 10;

    /// <summary>
    /// Returns a 200, 206 or 416 response (body not yet read). Throws <see cref="UserInputException"/> for a refusal,
    /// <see cref="HubTransientException"/> for a busy server and <see cref="TimeoutException"/> when no answer comes
    /// within the idle timeout.
    /// </summary>
    public async Task<HttpResponseMessage> GetAsync(Uri url, long rangeStart, HubRepo repo, string? filePath, CancellationToken cancellation)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        timeout.CancelAfter(settings.Retry.IdleTimeout);
        Uri current = url;
        for (int hop = 0; ; hop++)
        {
            HttpResponseMessage response = await SendAsync(current, rangeStart, timeout.Token, cancellation);
            if (IsRedirect(response.StatusCode) && response.Headers.Location is { } location)
            {
                using (response)
                {
                    if (hop == MaxRedirects)
                        throw new UserInputException($"{repo}: more than {MaxRedirects} redirects from {url}; check HF_ENDPOINT (now {settings.Endpoint.AbsoluteUri}) and any proxy");
                    current = NextHop(current, location, repo);
                    continue;
                }
            }
            if (response.IsSuccessStatusCode || response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
                return response;
            using (response)
            {
                if (HubErrors.IsTransient(response.StatusCode))
                    throw new HubTransientException($"HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
                throw HubErrors.ForStatus(response, repo, filePath, settings);
            }
        }
    }

    /// <summary>True when <paramref name="url"/> is on the Hub itself: the only place the token may go.</summary>
    internal bool IsHubOrigin(Uri url) =>
        Uri.Compare(url, settings.Endpoint, UriComponents.SchemeAndServer, UriFormat.UriEscaped, StringComparison.OrdinalIgnoreCase) == 0;

    private async Task<HttpResponseMessage> SendAsync(Uri url, long rangeStart, CancellationToken timeout, CancellationToken cancellation)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (settings.Token != null && IsHubOrigin(url)) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", settings.Token);
        if (rangeStart > 0) request.Headers.Range = new RangeHeaderValue(rangeStart, null);
        try
        {
            return await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout);
        }
        catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
        {
            throw new TimeoutException($"no answer within {settings.Retry.IdleTimeout.TotalSeconds:F0}s");
        }
    }

    private static bool IsRedirect(HttpStatusCode status) => status is HttpStatusCode.MovedPermanently or HttpStatusCode.Found
        or HttpStatusCode.SeeOther or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;

    /// <summary>Where a redirect points, refused when it leaves http(s) or drops from https to http (as the default handler does).</summary>
    private Uri NextHop(Uri current, Uri location, HubRepo repo)
    {
        Uri next = location.IsAbsoluteUri ? location : new Uri(current, location);
        if (next.Scheme != Uri.UriSchemeHttps && next.Scheme != Uri.UriSchemeHttp
            || current.Scheme == Uri.UriSchemeHttps && next.Scheme == Uri.UriSchemeHttp)
            throw new UserInputException($"{repo}: {current} redirects to {next}, which FinQLoRA does not follow (only http(s), never from https to http); check HF_ENDPOINT (now {settings.Endpoint.AbsoluteUri})");
        return next;
    }
}
