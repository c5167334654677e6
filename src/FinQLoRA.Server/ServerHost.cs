using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Distributed;
using FinQLoRA.Inference;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Server.Models;
using FinQLoRA.Serving;
using FinQLoRA.Serving.Pipeline;
using FinQLoRA.Server.Adapters;

namespace FinQLoRA.Server;

/// <summary>
/// A served checkpoint, built the same way for <c>finqlora serve</c> and the tests: every option checked before the
/// model loads, then the model and adapters, the chat format detected from the tokenizer, the engine and the HTTP
/// server (built, not started). Stopping drains: new requests get 503 while running ones finish within the shutdown
/// timeout.
/// </summary>
public sealed class ServerHost : IAsyncDisposable
{
    private readonly IDisposable _session;
    private ServerHost(IDisposable session, DecoderModel model, ITextTokenizer tokenizer, ServingEngine engine, OpenAiServer server, ChatFormat? chatFormat, TimeSpan shutdownTimeout)
    {
        _session = session;
        Model = model;
        Tokenizer = tokenizer;
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
    /// <summary>The model, or rank 0's stage of it in a pipeline.</summary>
    public DecoderModel Model { get; }
    public ITextTokenizer Tokenizer { get; }
    /// <summary>Where the server listens, once started.</summary>
    public Uri? Url => Server.Url;

    /// <summary>Checks the options (flags before any file is read), loads the model, registers its adapters (every
    /// folder checked against the model; only pinned ones read now) and builds the engine and the server. Throws
    /// <see cref="UserInputException"/> for a bad option, model or adapter.</summary>
    /// <param name="pipeline">with <see cref="ServerHostOptions.PipelineStages"/> &gt; 1: the MPI job, of which this is
    /// rank 0 (the caller keeps and disposes it; the other ranks run <see cref="PipelineStageWorker"/>, which put
    /// their layers of each adapter where this rank's residency puts it)</param>
    public static ServerHost Open(ServerHostOptions options, DistributedContext? pipeline = null)
    {
        CheckPipeline(options.PipelineStages, options.MicroBatches, options.PrefixCacheGib, pipeline?.Size ?? 1);
        if (pipeline is { Rank: not 0 }) throw new ArgumentException("ServerHost runs on rank 0; the other ranks run PipelineStageWorker", nameof(pipeline));
        var server = options.Server;
        var setup = new GenerationSetup(options.ModelPath, options.Load) { Adapters = options.Adapters, Command = "serve" };
        setup.Validate();
        server.Validate();
        var adapters = Registered(options);
        server.BindAddress();
        var modelPath = ModelPath.Classify(options.ModelPath);
        var (config, reader) = ModelLoading.Open(modelPath);
        reader.Dispose();
        ServerHostOptions.CheckPrefixCacheGib(options.PrefixCacheGib);
        // Read before the model loads, so that a damaged lineage.json is refused before minutes of loading.
        var lineages = adapters.ToDictionary(a => a.Name, a => AdapterLineage.Read(a.Dir));
        var engineOptions = new EngineOptions
        {
            MaxBatch = options.MaxBatch, MaxQueue = options.MaxQueue,
            MaxModelLen = options.MaxModelLen ?? Math.Min(config.MaxPositionEmbeddings, ServerHostOptions.DefaultMaxModelLen),
            PrefixCacheBytes = (long)(options.PrefixCacheGib * (1L << 30)),
            SchedulingPolicy = options.SchedulingPolicy,
            MaxLoras = options.MaxLoras, MaxCpuLoras = options.MaxCpuLoras,
        };
        engineOptions.Validate(config.MaxPositionEmbeddings);

        IDisposable session;
        DecoderModel model;
        ITextTokenizer tokenizer;
        if (pipeline is null)
        {
            var whole = GenerationSession.Open(setup with { Adapters = [] }); // adapters are the engine's, read on demand
            (session, model, tokenizer) = (whole, whole.Model, whole.Tokenizer);
        }
        else
        {
            tokenizer = ModelLoading.LoadTokenizer(options.ModelPath);
            (model, _) = PipelineServingStage.Load(options.ModelPath, options.Load with { Device = pipeline.Device }, options.PipelineStages, 0, []);
            session = model;
        }
        ServingEngine? engine = null;
        try
        {
            string? tokenizerConfig = modelPath.IsGguf ? null : Path.Combine(modelPath.Checkpoint, "tokenizer_config.json");
            // A template we refuse leaves /v1/completions working; chat requests get the refusal.
            ChatFormat? chat = null;
            string? refusal = null;
            try { chat = ChatFormat.Detect(tokenizer, tokenizerConfig); }
            catch (UserInputException e) { refusal = e.Message; }
            var metrics = new ServerMetrics(server.ServedModelName);
            engine = pipeline is null
                ? new ServingEngine(model, tokenizer, engineOptions, metrics)
                : ServingEngine.OverPipeline(model, tokenizer, engineOptions, pipeline.Communicator, options.MicroBatches ?? options.PipelineStages, metrics);
            // registered, read on first use; in a pipeline, residency's slot writes reach the other stages as it makes them
            foreach (var (name, dir, pinned) in adapters) engine.LoadAdapterAsync(name, dir, pinned).GetAwaiter().GetResult();
            var app = OpenAiServer.Create(engine, server with { ChatFormat = chat, ChatFormatRefusal = refusal }, metrics,
                adapters.Select(a => (a.Name, a.Dir)).ToList(), lineages);
            return new ServerHost(session, model, tokenizer, engine, app, chat, server.ShutdownTimeout);
        }
        catch
        {
            engine?.Dispose();
            session.Dispose();
            throw;
        }
    }

    /// <summary>Refuses pipeline options that do not fit a job of <paramref name="ranks"/> ranks, naming the flag (the
    /// CLI calls it from the launcher's environment, before MPI starts or anything loads).</summary>
    public static void CheckPipeline(int stages, int? microBatches, double prefixCacheGib, int ranks)
    {
        if (stages < 1) throw new UserInputException($"--pipeline-stages must be at least 1 (got {stages})");
        if (microBatches is < 1) throw new UserInputException($"--micro-batches must be at least 1 (got {microBatches})");
        if (stages == 1 && microBatches is not null)
            throw new UserInputException("--micro-batches needs --pipeline-stages N > 1 (one process runs each step as one batch)");
        if (stages > 1 && prefixCacheGib > 0)
            throw new UserInputException($"--prefix-cache-gib {prefixCacheGib} cannot be used with --pipeline-stages (prefix caching is not mirrored across ranks yet); use --prefix-cache-gib 0");
        if (stages != ranks)
            throw new UserInputException($"--pipeline-stages {stages} needs a job of {stages} ranks but this one has {ranks}; run: mpirun -np {stages} finqlora serve --pipeline-stages {stages} ...");
    }


    /// <summary>The adapters served from the start: <c>--adapter</c>'s, then the folders under <c>--adapter-root</c>; names
    /// and pins checked before anything loads.</summary>
    private static List<(string Name, string Dir, bool Pinned)> Registered(ServerHostOptions options)
    {
        var server = options.Server;
        var all = options.Adapters.Select(a => (a.Name, a.Dir, Pinned: options.PinnedAdapters.Contains(a.Name))).ToList();
        foreach (string pin in options.PinnedAdapters.Where(p => options.Adapters.All(a => a.Name != p)))
            throw new UserInputException($"--adapter {pin}: only an adapter given as --adapter NAME=DIR:pin can be pinned");
        if (server.AdapterRoot is { } root)
            foreach (var (name, dir) in AdapterRootScan.Find(root))
            {
                if (all.FirstOrDefault(a => a.Name == name) is { Name: not null } given)
                {
                    if (SameFolder(given.Dir, dir)) continue; // --adapter named a folder of the root by its own name
                    throw new UserInputException($"--adapter-root {root}: the folder '{name}' has the name of --adapter {name}={given.Dir}, another folder; rename one of them");
                }
                all.Add((name, dir, false));
            }
        foreach (var (name, dir, _) in all)
            if (name == server.ServedModelName) throw new UserInputException($"--adapter {name}={dir}: the name is the base model's served name; choose another");
        int pins = all.Count(a => a.Pinned);
        ServerHostOptions.CheckAdapterSlots(options.MaxLoras, options.MaxCpuLoras, pins, othersServed: all.Count > pins || server.AdapterRoot is not null);
        return all;
    }

    private static bool SameFolder(string a, string b) =>
        string.Equals(Path.GetFullPath(new DirectoryInfo(a).ResolveLinkTarget(true)?.FullName ?? a).TrimEnd(Path.DirectorySeparatorChar),
            Path.GetFullPath(b).TrimEnd(Path.DirectorySeparatorChar), StringComparison.Ordinal);

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
