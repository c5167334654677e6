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

    public static async Task DoneAsync(HttpContext context)
    {
        await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }
}
