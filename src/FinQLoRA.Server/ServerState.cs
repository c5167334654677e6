using FinQLoRA.Server.Adapters;
using FinQLoRA.Server.Models;
using FinQLoRA.Serving;

namespace FinQLoRA.Server;

/// <summary>What every endpoint needs: the engine, the options, the served names and the metrics.</summary>
internal sealed class ServerState(ServingEngine engine, ServerOptions options, ServerMetrics metrics)
{
    public const string ModelItem = "finqlora.model";

    public ServingEngine Engine => engine;
    public ServerOptions Options => options;
    public ServerMetrics Metrics => metrics;
    public ServedModels Models { get; } = new(engine, options.ServedModelName, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), engine.Options.MaxModelLen);
    public AdapterRootPolicy? AdapterRoot { get; } = options.AdapterRoot is { } root ? new AdapterRootPolicy(root) : null;
    public ApiKeyCheck? Key { get; } = options.ApiKey is { } key ? new ApiKeyCheck(key) : null;
    /// <summary>Set when the host begins to stop: new requests get 503 while running ones finish.</summary>
    public volatile bool Stopping;
    /// <summary>/ready: the model is loaded (the server exists only once it is) and the server is not draining.</summary>
    public bool IsReady => !Stopping && !engine.IsStopping;
}
