using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Common;

/// <summary>Server-sent events as OpenAI streams them: <c>data: {json}\n\n</c> per chunk, flushed, and
/// <c>data: [DONE]\n\n</c> at the end.</summary>
internal static class Sse
{
    public static async Task StartAsync(HttpContext context)
    {
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        await context.Response.StartAsync(context.RequestAborted).ConfigureAwait(false);
    }

    public static async Task SendAsync<T>(HttpContext context, T chunk)
    {
        await context.Response.WriteAsync("data: " + OpenAiJson.Serialize(chunk) + "\n\n", context.RequestAborted).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Ends a stream of <paramref name="choices"/> choices: all of them must have finished (otherwise the client
    /// went away mid-stream), then the usage chunk where the client asked for one, then <c>[DONE]</c>.</summary>
    public static async Task EndAsync<T>(HttpContext context, int finished, int choices, T? usageChunk) where T : class
    {
        if (finished < choices) throw new OperationCanceledException("a choice ended before it finished");
        if (usageChunk is not null) await SendAsync(context, usageChunk).ConfigureAwait(false);
        await DoneAsync(context).ConfigureAwait(false);
    }

    public static async Task DoneAsync(HttpContext context)
    {
        await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }
}
