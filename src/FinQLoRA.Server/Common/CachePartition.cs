using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Common;

/// <summary>
/// The prefix-cache partition of a request (<see cref="Serving.EngineRequest.CachePartition"/>): its
/// <c>prompt_cache_key</c>, and when the server requires an API key, a SHA-256 of the key the request presented too.
/// Requests share cached blocks only within a partition, so one tenant cannot learn from the time to first token
/// whether another tenant sent a prompt (the timing attack of CVE-2025-46570 on vLLM). Without an API key and without
/// <c>prompt_cache_key</c> requests share one partition (null). Every endpoint that submits to the engine calls this.
/// </summary>
internal static class CachePartition
{
    public static string? Of(HttpContext context, ServerState state, string? promptCacheKey) =>
        Of(state.Key is not null, context.Request.Headers.Authorization, promptCacheKey);

    /// <summary>The rule itself: <paramref name="keyed"/> when the server requires an API key, <paramref name="authorization"/>
    /// the request's header (already accepted).</summary>
    public static string? Of(bool keyed, string? authorization, string? promptCacheKey)
    {
        if (!keyed) return promptCacheKey;
        // the key itself never becomes part of anything kept: only its hash, fixed-length, so the parts cannot run together
        string tenant = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(ApiKeyCheck.Given(authorization))));
        return promptCacheKey is null ? "key:" + tenant : $"key:{tenant}/{promptCacheKey}";
    }
}
