using FinQLoRA.Serving;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Common;

/// <summary>Writes errors in OpenAI's shape and maps engine refusals to their statuses. Only messages we wrote
/// ourselves reach a client; anything unexpected becomes a bare 500.</summary>
internal static class ApiErrors
{
    public static ApiException From(ServingException e) => e.Kind switch
    {
        ServingErrorKind.UnknownModel => new ApiException(404, e.Message, e.Param, "model_not_found"),
        ServingErrorKind.ContextLength => new ApiException(400, e.Message, e.Param, "context_length_exceeded"),
        ServingErrorKind.QueueFull => new ApiException(429, e.Message, null, "queue_full"),
        ServingErrorKind.ShuttingDown => new ApiException(503, e.Message, null, "shutting_down"),
        _ => new ApiException(400, e.Message, e.Param),
    };

    public static ErrorResponse Body(ApiException e) => new(new ErrorInfo(e.Message, e.Type, e.Param, e.Code));

    public static async Task WriteAsync(HttpContext context, ApiException e)
    {
        if (context.Response.HasStarted)
        {
            // Mid-stream: the status is sent already; say it as an SSE event and end the stream.
            await context.Response.WriteAsync($"data: {OpenAiJson.Serialize(Body(e))}\n\n", context.RequestAborted).ConfigureAwait(false);
            return;
        }
        context.Response.Clear();
        if (e.RetryAfterSeconds is int seconds)
            context.Response.Headers.RetryAfter = Math.Max(1, seconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
        // A body over the limit is left unread, and Kestrel then drops the connection: say so, or a client reuses it
        // for its next request and meets a reset there (found by the request fuzzer).
        if (e.Status == StatusCodes.Status413PayloadTooLarge) context.Response.Headers.Connection = "close";
        await TypedResults.Json(Body(e), OpenAiJson.Info<ErrorResponse>(), "application/json", e.Status).ExecuteAsync(context).ConfigureAwait(false);
    }
}
