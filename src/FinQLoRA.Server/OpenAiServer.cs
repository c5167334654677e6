using FinQLoRA.Server.Adapters;
using FinQLoRA.Server.Audit;
using FinQLoRA.Server.ChatCompletions;
using FinQLoRA.Server.Common;
using FinQLoRA.Server.Completions;
using FinQLoRA.Server.ConsolePage;
using FinQLoRA.Server.Decisions;
using FinQLoRA.Server.Models;
using FinQLoRA.Server.Tokenize;
using FinQLoRA.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using System.Text.Json;

namespace FinQLoRA.Server;

/// <summary>
/// An OpenAI-compatible HTTP server (ASP.NET Core minimal APIs on Kestrel) over a <see cref="ServingEngine"/>:
/// /v1/models, /v1/completions, /v1/chat/completions, /v1/decisions, vLLM's adapter endpoints, /tokenize and
/// /detokenize, /health, /ready, /metrics and
/// the console page at /. One middleware
/// (<see cref="ApiGuard"/>) turns every failure into OpenAI's error shape (no stack trace reaches a client), checks the
/// API key on /v1 and answers 503 once the server is stopping.
/// </summary>
public sealed class OpenAiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ServerState _state;

    private OpenAiServer(WebApplication app, ServerState state)
    {
        _app = app;
        _state = state;
    }

    public Uri? Url { get; private set; }
    public ServerMetrics Metrics => _state.Metrics;

    /// <summary>Builds the server; <see cref="StartAsync"/> binds it. <paramref name="metrics"/> must be the observer the
    /// engine was made with (so that the engine's figures land in the same registry). <paramref name="adapters"/> are the
    /// folders of the adapters the engine serves from the start (their weights are hashed for the audit log);
    /// <paramref name="adapterLineages"/>: what the lineage.json of each of them held (<see cref="AdapterLineage.Read"/>),
    /// shown by /v1/models.</summary>
    public static OpenAiServer Create(ServingEngine engine, ServerOptions options, ServerMetrics metrics,
        IReadOnlyList<(string Name, string Dir)>? adapters = null, IReadOnlyDictionary<string, JsonElement?>? adapterLineages = null)
    {
        options.Validate();
        var address = options.BindAddress();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.ShutdownTimeout);
        // No console lifetime: its Ctrl-C/SIGTERM handler would stop Kestrel's listeners at once, refusing connections
        // while requests drain. The host decides (finqlora serve: BeginShutdown, drain, StopAsync).
        builder.Services.AddSingleton<IHostLifetime, HostLifetimeWithoutSignals>();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            k.Listen(address, options.Port);
        });
        var app = builder.Build();
        var audit = options.AuditLog is { } auditOptions ? AuditLog.Open(auditOptions) : null;
        var state = new ServerState(engine, options, metrics, audit);
        try
        {
            foreach (var (name, dir) in adapters ?? [])
                state.Fingerprints.Loaded(name, state.Fingerprints.Hash(dir));
        }
        catch
        {
            audit?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            state.Dispose();
            throw;
        }
        foreach (var (adapter, lineage) in adapterLineages ?? new Dictionary<string, JsonElement?>())
            state.Models.SetLineage(adapter, lineage);
        app.Lifetime.ApplicationStopping.Register(() =>
        {
            state.Stopping = true;
            engine.BeginShutdown();
        });
        app.Use((context, next) => ApiGuard.InvokeAsync(context, next, state));
        // Liveness and readiness as vLLM's deployments probe them: a draining server is alive (restarting it would end
        // the requests it is finishing) but not ready (a balancer sends it nothing new).
        app.MapGet("/health", () => Results.Ok());
        app.MapGet("/ready", () => state.IsReady ? Results.Ok() : Results.StatusCode(503));
        app.MapGet("/metrics", (HttpContext c) => MetricsText.WriteAsync(c, metrics.Registry));
        TokenizeEndpoints.Map(app, state); // outside /v1, as vLLM has them, behind the key like /v1
        // vLLM's split: one family per folder (protocol records, a thin endpoint, the logic that talks to the engine).
        var v1 = app.MapGroup("/v1");
        ModelsEndpoints.Map(v1, state);
        CompletionsEndpoint.Map(v1, state);
        ChatCompletionsEndpoint.Map(v1, state);
        DecisionsEndpoint.Map(v1, state);
        AdapterEndpoints.Map(v1, state);
        // The console page holds no data (it asks /v1 for everything, with the key), so it is served without the key.
        ConsoleEndpoints.Map(app);
        // Every path: the default fallback pattern skips paths that look like file names ("/v1/..%2Fx"), which then got
        // routing's bare 404 instead of the error object.
        app.MapFallback("{**path}", (HttpContext c) => throw new ApiException(404, $"no route {c.Request.Method} {c.Request.Path}", null, "not_found"));
        return new OpenAiServer(app, state);
    }

    public async Task StartAsync(CancellationToken cancellation = default)
    {
        await _app.StartAsync(cancellation).ConfigureAwait(false);
        string url = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Url = new Uri(url.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal).Replace("[::]", "[::1]", StringComparison.Ordinal));
    }

    /// <summary>Completes when the host stops (Ctrl-C, SIGTERM or <see cref="StopAsync"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellation = default) => _app.WaitForShutdownAsync(cancellation);

    /// <summary>From now on new requests get 503 (and /ready too, so that a balancer drains this server); running
    /// ones go on. The first step of a stop.</summary>
    public void BeginShutdown()
    {
        _state.Stopping = true;
        _state.Engine.BeginShutdown();
    }

    /// <summary>Stops accepting (new requests get 503), lets in-flight requests finish within the shutdown timeout, stops.</summary>
    public async Task StopAsync()
    {
        BeginShutdown();
        using var deadline = new CancellationTokenSource(_state.Options.ShutdownTimeout);
        await _app.StopAsync(deadline.Token).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync().ConfigureAwait(false);
        _state.Dispose();
        if (_state.Audit is { } audit) await audit.DisposeAsync().ConfigureAwait(false); // the lines of the last requests
    }
}
