using FinQLoRA.Server.Adapters;
using FinQLoRA.Server.Audit;
using FinQLoRA.Server.Models;
using FinQLoRA.Server.Tenancy;
using FinQLoRA.Serving;

namespace FinQLoRA.Server;

/// <summary>What every endpoint needs: the engine, the options, the served names, the keys and their limits, the metrics
/// and the audit log.</summary>
internal sealed class ServerState(ServingEngine engine, ServerOptions options, ServerMetrics metrics, AuditLog? audit) : IDisposable
{
    public const string ModelItem = "finqlora.model";

    public ServingEngine Engine => engine;
    public ServerOptions Options => options;
    public ServerMetrics Metrics => metrics;
    public ServedModels Models { get; } = new(engine, options.ServedModelName, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), engine.Options.MaxModelLen);
    public AdapterRootPolicy? AdapterRoot { get; } = options.AdapterRoot is { } root ? new AdapterRootPolicy(root) : null;
    /// <summary>The keys requests must present on /v1; null: no key needed (every request is "anonymous").</summary>
    public KeyRing? Keys { get; } = options.KeyRing();
    /// <summary>Only keys of a keys file have limits (--api-key's one key has none).</summary>
    public TenantLimits Limits { get; } = new(options.Keys ?? []);
    /// <summary>Where every /v1 request is recorded once it has ended; null without --audit-log.</summary>
    public AuditLog? Audit => audit;
    /// <summary>The sha256 of each adapter's weights, for the audit log (kept only when it is on).</summary>
    public AdapterFingerprints Fingerprints { get; } = new(audit is not null);
    /// <summary>Set when the host begins to stop: new requests get 503 while running ones finish.</summary>
    public volatile bool Stopping;
    /// <summary>/ready: the model is loaded (the server exists only once it is), the server is not draining and the engine has not
    /// failed (a pipeline stage that stopped answering).</summary>
    public bool IsReady => !Stopping && engine.IsReady;

    public void Dispose() => Limits.Dispose();
}
