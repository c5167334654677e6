namespace FinQLoRA.Server.Tenancy;

/// <summary>
/// One API key of the server and what it may do: its id (in logs, metrics and the prefix cache's partition), the
/// SHA-256 of the key (the key itself is never kept), the served names it may use, its rate limits and whether it may
/// load and unload adapters. <see cref="Default"/> is the one key of <c>--api-key</c>, <see cref="Anonymous"/> every
/// request of a server without keys.
/// </summary>
public sealed record TenantKey(string Id, byte[] Sha256, ModelGrant Models)
{
    /// <summary>Requests per minute (a token bucket holding a minute's worth); null: unlimited.</summary>
    public int? RequestsPerMinute { get; init; }
    /// <summary>Tokens per minute, charged at admission as the prompt tokens plus max_tokens of every choice; null: unlimited.</summary>
    public int? TokensPerMinute { get; init; }
    /// <summary>May call /v1/load_lora_adapter and /v1/unload_lora_adapter (for names it may use).</summary>
    public bool CanManageAdapters { get; init; }

    /// <summary>The key id of <c>--api-key</c>: every model, adapters managed, no limits (what the one key always allowed).</summary>
    public const string DefaultId = "default";
    /// <summary>The key id of requests to a server without keys.</summary>
    public const string AnonymousId = "anonymous";

    public static TenantKey Default(string key) =>
        new(DefaultId, System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)), ModelGrant.All) { CanManageAdapters = true };

    public static TenantKey Anonymous { get; } = new(AnonymousId, [], ModelGrant.All) { CanManageAdapters = true };
}
