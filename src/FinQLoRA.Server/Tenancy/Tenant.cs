using FinQLoRA.Server.Common;
using FinQLoRA.Serving;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Tenancy;

/// <summary>
/// The key a request was authenticated with, as the rest of the server reads it: <see cref="KeyIdItem"/> (its id, a
/// string: <c>"default"</c> for <c>--api-key</c>, <c>"anonymous"</c> without keys) for logs, and the key itself for the
/// one authorisation rule: a model the key may not use is answered exactly as a model that does not exist.
/// </summary>
public static class Tenant
{
    /// <summary><c>HttpContext.Items</c> name of the authenticated key's id (a string); the audit log reads it.</summary>
    public const string KeyIdItem = "finqlora.key_id";
    private const string KeyItem = "finqlora.key";

    /// <summary>The request's key; <see cref="TenantKey.Anonymous"/> before authentication or without keys.</summary>
    public static TenantKey Of(HttpContext context) =>
        context.Items.TryGetValue(KeyItem, out var k) && k is TenantKey key ? key : TenantKey.Anonymous;

    /// <summary>Sets the request's key from its <c>Authorization: Bearer KEY</c>: one of <paramref name="keys"/>
    /// (401 <c>invalid_api_key</c> for none or an unknown one, the request staying "anonymous" for the logs), or
    /// <see cref="TenantKey.Anonymous"/> where no key is required (<paramref name="keys"/> null).</summary>
    public static void Authenticate(HttpContext context, KeyRing? keys)
    {
        Set(context, TenantKey.Anonymous);
        if (keys is null) return;
        Set(context, keys.Find(ApiKeyHash.Presented(context.Request.Headers.Authorization))
            ?? throw new ApiException(401, "Incorrect API key provided; pass it as 'Authorization: Bearer KEY'", null, "invalid_api_key"));
    }

    private static void Set(HttpContext context, TenantKey key)
    {
        context.Items[KeyItem] = key;
        context.Items[KeyIdItem] = key.Id;
    }

    /// <summary>Refuses a served name the request's key may not use with the very error of a name that is not served
    /// (status, body and param alike), so that a key cannot learn which other tenants' adapters exist.</summary>
    internal static void Authorize(HttpContext context, string model, string param = "model")
    {
        if (!Of(context).Models.Allows(model)) throw ApiErrors.From(ServingException.UnknownModel(model, param));
    }

    /// <summary>403 unless the request's key may load and unload adapters (checked before anything else about the call).</summary>
    internal static void AuthorizeAdapterManagement(HttpContext context)
    {
        var key = Of(context);
        if (!key.CanManageAdapters)
            throw new ApiException(403, $"the API key '{key.Id}' may not load or unload adapters; an administrator sets can_manage_adapters: true in its keys file entry", null, "permission_denied");
    }
}
