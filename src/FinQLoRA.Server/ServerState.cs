using FinQLoRA.Server.Adapters;
using FinQLoRA.Server.Audit;
using FinQLoRA.Server.Models;
using FinQLoRA.Serving;

namespace FinQLoRA.Server;

/// <summary>What every endpoint needs: the engine, the options, the served names, the metrics and the audit log.</summary>
internal sealed class ServerState(ServingEngine engine, ServerOptions options, ServerMetrics metrics, AuditLog? audit)
{
    public const string ModelItem = "finqlora.model";

    public ServingEngine Engine => engine;
    public ServerOptions Options => options;
    public ServerMetrics Metrics => metrics;
    public ServedModels Models { get; } = new(engine, options.ServedModelName, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), engine.Options.MaxModelLen);
    public AdapterRootPolicy? AdapterRoot { get; } = options.AdapterRoot is { } root ? new AdapterRootPolicy(root) : null;
    public ApiKeyCheck? Key { get; } = options.ApiKey is { } key ? new ApiKeyCheck(key) : null;
    /// <summary>Where every /v1 request is recorded once it has ended; null without --audit-log.</summary>
    public AuditLog? Audit => audit;
    /// <summary>The sha256 of each adapter's weights, for the audit log (kept only when it is on).</summary>
    public AdapterFingerprints Fingerprints { get; } = new(audit is not null);
    /// <summary>Set when the host begins to stop: new requests get 503 while running ones finish.</summary>
    public volatile bool Stopping;
}
