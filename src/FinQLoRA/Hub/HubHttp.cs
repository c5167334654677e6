using System.Net;
using System.Net.Http.Headers;

namespace FinQLoRA.Hub;

/// <summary>Sends one GET to the Hub with the token and an optional byte range, and sorts the answer.</summary>
internal sealed class HubHttp(HttpClient client, HubSettings settings)
{
    /// <summary>
    /// Returns a 200, 206 or 416 response (body not yet read). Throws <see cref="UserInputException"/> for a refusal,
    /// <see cref="HubTransientException"/> for a busy server and <see cref="TimeoutException"/> when no answer comes
    /// within the idle timeout. Redirects (the Hub sends large files to a CDN) are followed by the handler, which
    /// drops the Authorization header on the way so the token never reaches the CDN.
    /// </summary>
    public async Task<HttpResponseMessage> GetAsync(Uri url, long rangeStart, HubRepo repo, string? filePath, CancellationToken cancellation)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (settings.Token != null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", settings.Token);
        if (rangeStart > 0) request.Headers.Range = new RangeHeaderValue(rangeStart, null);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        timeout.CancelAfter(settings.Retry.IdleTimeout);
        HttpResponseMessage response;
        try
        {
            response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
        {
            throw new TimeoutException($"no answer within {settings.Retry.IdleTimeout.TotalSeconds:F0}s");
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
