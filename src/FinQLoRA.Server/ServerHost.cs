using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Inference;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Serving;

namespace FinQLoRA.Server;

/// <summary>
/// A served checkpoint, built the same way for <c>finqlora serve</c> and the tests: every option checked before the
/// model loads, then the model and adapters, the chat format detected from the tokenizer, the engine and the HTTP
/// server (built, not started). Stopping drains: new requests get 503 while running ones finish within the shutdown
/// timeout.
/// </summary>
public sealed class ServerHost : IAsyncDisposable
{
    private readonly GenerationSession _session;
    private ServerHost(GenerationSession session, ServingEngine engine, OpenAiServer server, ChatFormat? chatFormat, TimeSpan shutdownTimeout)
    {
        _session = session;
        Engine = engine;
        Server = server;
        ChatFormat = chatFormat;
        _shutdownTimeout = shutdownTimeout;
    }

    private readonly TimeSpan _shutdownTimeout;

    public ServingEngine Engine { get; }
    public OpenAiServer Server { get; }
    /// <summary>The format chat requests are rendered with; null when the model has none (chat requests get 400).</summary>
    public ChatFormat? ChatFormat { get; }
    public DecoderModel Model => _session.Model;
    public ITextTokenizer Tokenizer => _session.Tokenizer;
    /// <summary>Where the server listens, once started.</summary>
    public Uri? Url => Server.Url;

    /// <summary>Checks the options (flags before any file is read), loads the model and its adapters, and builds the
    /// engine and the server. Throws <see cref="UserInputException"/> for a bad option, model or adapter.</summary>
    public static ServerHost Open(ServerHostOptions options)
    {
        var server = options.Server;
        foreach (var (name, dir) in options.Adapters)
            if (name == server.ServedModelName) throw new UserInputException($"--adapter {name}={dir}: the name is the base model's served name; choose another");
        var setup = new GenerationSetup(options.ModelPath, options.Load) { Adapters = options.Adapters, Command = "serve" };
        setup.Validate();
        server.Validate();
        server.BindAddress();
        var modelPath = ModelPath.Classify(options.ModelPath);
        var (config, reader) = ModelLoading.Open(modelPath);
        reader.Dispose();
        ServerHostOptions.CheckPrefixCacheGib(options.PrefixCacheGib);
        var engineOptions = new EngineOptions
        {
            MaxBatch = options.MaxBatch, MaxQueue = options.MaxQueue,
            MaxModelLen = options.MaxModelLen ?? Math.Min(config.MaxPositionEmbeddings, ServerHostOptions.DefaultMaxModelLen),
            PrefixCacheBytes = (long)(options.PrefixCacheGib * (1L << 30)),
            SchedulingPolicy = options.SchedulingPolicy,
        };
        engineOptions.Validate(config.MaxPositionEmbeddings);

        var session = GenerationSession.Open(setup);
        ServingEngine? engine = null;
        try
        {
            string? tokenizerConfig = modelPath.IsGguf ? null : Path.Combine(modelPath.Checkpoint, "tokenizer_config.json");
            // A template we refuse leaves /v1/completions working; chat requests get the refusal.
            ChatFormat? chat = null;
            string? refusal = null;
            try { chat = ChatFormat.Detect(session.Tokenizer, tokenizerConfig); }
            catch (UserInputException e) { refusal = e.Message; }
            var metrics = new ServerMetrics(server.ServedModelName);
            engine = new ServingEngine(session.Model, session.Tokenizer, engineOptions, metrics);
            var app = OpenAiServer.Create(engine, server with { ChatFormat = chat, ChatFormatRefusal = refusal }, metrics);
            return new ServerHost(session, engine, app, chat, server.ShutdownTimeout);
        }
        catch
        {
            engine?.Dispose();
            session.Dispose();
            throw;
        }
    }

    /// <summary>Binds the listener.</summary>
    public Task StartAsync(CancellationToken cancellation = default) => Server.StartAsync(cancellation);

    /// <summary>Stops as a drain: new requests get 503 (Kestrel keeps listening, so late clients are answered rather than
    /// refused) while running ones finish within the shutdown timeout; then the listener stops.</summary>
    /// <returns>false when requests still running at the deadline were ended</returns>
    public async Task<bool> StopAsync()
    {
        Server.BeginShutdown();
        bool drained = await Engine.DrainAsync(_shutdownTimeout).ConfigureAwait(false);
        await Server.StopAsync().ConfigureAwait(false);
        return drained;
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync().ConfigureAwait(false);
        Engine.Dispose();
        _session.Dispose();
    }
}
