using FinQLoRA.Server.Tenancy;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Common;

/// <summary>
/// The prefix-cache partition of a request (<see cref="Serving.EngineRequest.CachePartition"/>): its
/// <c>prompt_cache_key</c>, and when the server requires API keys, the id of the key the request was authenticated
/// with too. Requests share cached blocks only within a partition, so one tenant cannot learn from the time to first
/// token whether another tenant sent a prompt (the timing attack of CVE-2025-46570 on vLLM). Without keys and without
/// <c>prompt_cache_key</c> requests share one partition (null). Every endpoint that submits to the engine calls this.
/// </summary>
internal static class CachePartition
{
    public static string? Of(HttpContext context, ServerState state, string? promptCacheKey) =>
        Of(state.Keys is null ? null : Tenant.Of(context).Id, promptCacheKey);

    /// <summary>The rule itself: <paramref name="keyId"/> the authenticated key's id when the server requires keys
    /// (null when it does not). Ids hold no '/' (the keys file refuses it), so the parts cannot run together.</summary>
    public static string? Of(string? keyId, string? promptCacheKey) =>
        keyId is null ? promptCacheKey
        : promptCacheKey is null ? "key:" + keyId
        : $"key:{keyId}/{promptCacheKey}";
}
