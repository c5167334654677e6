using System.Diagnostics;
using FinQLoRA.Server.Audit;
using FinQLoRA.Server.Common;
using FinQLoRA.Server.Tenancy;
using FinQLoRA.Serving;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server;

/// <summary>The middleware in front of every route: the request's id (<see cref="RequestIds"/>) on every response, the
/// API key on /v1, /tokenize and /detokenize (unknown /v1 routes included, so that they do not reveal themselves to a client without the key) and
/// its requests-per-minute limit, 503 once the server is stopping, every failure as OpenAI's error object, the request
/// counted in the metrics under its served model name, and each /v1 request written to the audit log once it has ended.</summary>
internal static class ApiGuard
{
    /// <summary>nginx's status for a request whose client went away before the answer was complete.</summary>
    private const int ClientClosedRequest = 499;

    /// <summary>The routes behind the key: /v1 and vLLM's /tokenize and /detokenize (which read the model's vocabulary).
    /// /health, /ready and /metrics stay open to probes and scrapers, as vLLM has them.</summary>
    private static bool IsApi(PathString path) =>
        path.StartsWithSegments("/v1") || path.StartsWithSegments("/tokenize") || path.StartsWithSegments("/detokenize");

    public static async Task InvokeAsync(HttpContext context, RequestDelegate next, ServerState state)
    {
        bool api = IsApi(context.Request.Path);
        var clock = Stopwatch.StartNew();
        string requestId = RequestIds.Of(context.Request);
        context.TraceIdentifier = requestId;
        // Set as the headers go out: an error answer clears the headers set before it.
        context.Response.OnStarting(() =>
        {
            context.Response.Headers[RequestIds.Header] = requestId;
            return Task.CompletedTask;
        });
        var audit = api && state.Audit is { } log ? new AuditEntry(requestId, context.Request.Path, DateTimeOffset.UtcNow, log.IncludeContent) : null;
        audit?.AttachTo(context);
        bool abandoned = false;
        try
        {
            Tenant.Authenticate(context, api ? state.Keys : null);
            if (api && state.Stopping)
                throw new ApiException(503, "the server is shutting down", null, "shutting_down");
            if (api) state.Limits.AdmitRequest(Tenant.Of(context));
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
                Console.Error.WriteLine($"finqlora serve: internal error on {context.Request.Method} {context.Request.Path} (request {requestId}): {e}");
                error = new ApiException(500, "internal server error", null, "internal_error");
            }
            audit?.Failed(error.Code ?? error.Type);
            try { await ApiErrors.WriteAsync(context, error).ConfigureAwait(false); }
            catch (Exception) when (context.RequestAborted.IsCancellationRequested) { abandoned = true; }
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; its rows were cancelled with the request. Nothing to answer.
            abandoned = true;
        }
        finally
        {
            if (api)
                state.Metrics.Request(context.Items.TryGetValue(ServerState.ModelItem, out var m) && m is string model ? model : "none", context.Response.StatusCode);
            if (audit is not null)
            {
                int status = abandoned ? ClientClosedRequest : context.Response.StatusCode;
                state.Audit!.Append(audit.ToJsonLine(status == 401 ? null : Tenant.Of(context).Id, status, clock.Elapsed.TotalMilliseconds));
            }
        }
    }
}
