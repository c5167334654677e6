using FinQLoRA.Server.Common;
using FinQLoRA.Serving;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server;

/// <summary>The middleware in front of every route: the API key on /v1 and /tokenize, /detokenize (unknown /v1 routes included, so that they do
/// not reveal themselves to a client without the key), 503 once the server is stopping, every failure as OpenAI's
/// error object, and the request counted in the metrics under its served model name.</summary>
internal static class ApiGuard
{
    /// <summary>The routes behind the key: /v1 and vLLM's /tokenize and /detokenize (which read the model's vocabulary).
    /// /health, /ready and /metrics stay open to probes and scrapers, as vLLM has them.</summary>
    private static bool IsApi(PathString path) =>
        path.StartsWithSegments("/v1") || path.StartsWithSegments("/tokenize") || path.StartsWithSegments("/detokenize");

    public static async Task InvokeAsync(HttpContext context, RequestDelegate next, ServerState state)
    {
        bool api = IsApi(context.Request.Path);
        try
        {
            if (api && state.Key is { } key && !key.Accepts(context.Request.Headers.Authorization))
                throw new ApiException(401, "Incorrect API key provided; pass it as 'Authorization: Bearer KEY'", null, "invalid_api_key");
            if (api && state.Stopping)
                throw new ApiException(503, "the server is shutting down", null, "shutting_down");
            await next(context).ConfigureAwait(false);
        }
        catch (Exception e) when (!context.RequestAborted.IsCancellationRequested)
        {
            var error = e switch
            {
                ApiException a => a,
                ServingException s => ApiErrors.From(s),
                BadHttpRequestException b when b.StatusCode == 413 => new ApiException(413, "the request body is too large", null, "request_too_large"),
                BadHttpRequestException b => new ApiException(b.StatusCode, "bad request"),
                // A request the engine ended before it finished, the client still there: the stop deadline passed.
                OperationCanceledException when state.Stopping || state.Engine.IsStopping => new ApiException(503, "the server stopped before the request finished", null, "shutting_down"),
                _ => null,
            };
            if (error is null)
            {
                Console.Error.WriteLine($"finqlora serve: internal error on {context.Request.Method} {context.Request.Path}: {e}");
                error = new ApiException(500, "internal server error", null, "internal_error");
            }
            try { await ApiErrors.WriteAsync(context, error).ConfigureAwait(false); }
            catch (Exception) when (context.RequestAborted.IsCancellationRequested) { }
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; its rows were cancelled with the request. Nothing to answer.
        }
        finally
        {
            if (api)
                state.Metrics.Request(context.Items.TryGetValue(ServerState.ModelItem, out var m) && m is string model ? model : "none", context.Response.StatusCode);
        }
    }
}
