using System.Threading.Channels;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Distributed;
using FinQLoRA.Models;
using FinQLoRA.Serving.Residency;

namespace FinQLoRA.Serving;

/// <summary>
/// Continuous batching over one model and its adapters: what the HTTP layer and in-process clients call. It checks
/// requests and composes three parts: the <see cref="Scheduler"/> (queue, slots, the one owner thread that alone
/// touches the model), the <see cref="ModelRunner"/> (the forward passes and sampling of one step) and the
/// <see cref="AdapterRegistry"/> (the names requests may use) with the <see cref="AdapterResidency"/> (which of them are
/// on the device now; rows with different adapters share one forward through <see cref="StackedLora"/>).
/// </summary>
public sealed class ServingEngine : IDisposable
{
    private readonly DecoderModel _model;
    private readonly AdapterRegistry _adapters;
    private readonly AdapterResidency _residency;
    private readonly LoraTargetShapes _shapes;
    private readonly Scheduler _scheduler;

    /// <summary>Starts the scheduler on <paramref name="model"/>; adapters already loaded into it are served under their
    /// names (the first <see cref="EngineOptions.MaxLoras"/> on the device, the others in host memory until needed).</summary>
    public ServingEngine(DecoderModel model, ITextTokenizer tokenizer, EngineOptions options, IEngineObserver? observer = null)
        : this(model, tokenizer, options, observer, (_, cache) => new LocalStepForward(model, cache))
    {
    }

    /// <summary>Starts the scheduler with <paramref name="forward"/> running a step's layers over the slot pool.</summary>
    internal ServingEngine(DecoderModel model, ITextTokenizer tokenizer, EngineOptions options, IEngineObserver? observer,
        Func<AdapterResidency, SlotKvCache, IStepForward> forward)
    {
        options.Validate(model.Config.MaxPositionEmbeddings);
        _model = model;
        Tokenizer = tokenizer;
        Options = options;
        model.eval();
        _shapes = LoraTargetShapes.Of(model);
        _adapters = new AdapterRegistry(LoraInjector.AdapterNames(model));
        _residency = new AdapterResidency(model, options.MaxLoras, options.MaxCpuLoras ?? options.MaxLoras);
        try { _scheduler = new Scheduler(model, tokenizer, options, _adapters, _residency, observer, cache => forward(_residency, cache)); }
        catch
        {
            _residency.Dispose(); // gives the projections back their plain adapters
            throw;
        }
        // residency's slot writes, mirrored by a pipeline's other stages on their layers (scheduler thread, between steps)
        _residency.Placed = (name, dir, index) => _scheduler.Forward.AdapterPlaced(name, dir, index);
        _residency.Vacated = name => _scheduler.Forward.AdapterVacated(name);
    }

    /// <summary>Rank 0 of <c>serve --pipeline-stages N</c>: the scheduler and sampling run here on
    /// <paramref name="stageModel"/> (the first stage's layers, the embeddings and the head:
    /// <see cref="Pipeline.PipelineServingStage.Load"/>); every step's layers run through the stages, whose ranks run
    /// <see cref="Pipeline.PipelineStageWorker"/>, in up to <paramref name="microBatches"/> micro-batches. Prefix caching
    /// is not mirrored across ranks: <see cref="EngineOptions.PrefixCacheBytes"/> must be 0.</summary>
    public static ServingEngine OverPipeline(DecoderModel stageModel, ITextTokenizer tokenizer, EngineOptions options, ICommunicator comm,
        int microBatches, IEngineObserver? observer = null)
    {
        if (comm.Rank != 0) throw new ArgumentException("the engine runs on rank 0; the other ranks run PipelineStageWorker", nameof(comm));
        if (comm.Size < 2) throw new ArgumentException("a pipeline needs at least 2 ranks", nameof(comm));
        if (microBatches < 1) throw UserInputException.About($"{new ConfigField("micro_batches")} must be at least 1 (got {microBatches})");
        if (options.PrefixCacheBytes > 0)
            throw UserInputException.About($"{new ConfigField("prefix_cache_gib")} must be 0 with {new ConfigField("pipeline_stages")} (prefix caching is not mirrored across ranks yet)");
        ServingEngine? engine = null;
        engine = new ServingEngine(stageModel, tokenizer, options, observer, (adapters, cache) =>
            new Pipeline.PipelineStepForward(stageModel, cache, adapters, comm, microBatches, options, reason => engine?.MarkFaulted(reason)));
        return engine;
    }

    public ITextTokenizer Tokenizer { get; }
    public ModelConfig Config => _model.Config;
    public EngineOptions Options { get; }
    public long KvCacheBytes => _scheduler.KvCacheBytes;
    /// <summary>The prefix cache's block pool (0 when prefix caching is off).</summary>
    public long PrefixCacheBytes => _scheduler.PrefixCacheBytes;

    /// <summary>Adapters requests may name now, resident or not (not those being unloaded), in registration order.</summary>
    public IReadOnlyList<string> Adapters => _adapters.Names;

    /// <summary>Adapter folders read from disk so far (a return from host memory reads none).</summary>
    public long AdapterReads => _residency.DiskReads;

    /// <summary>Adapters on the device at once (<c>--max-loras</c>).</summary>
    public int MaxLoras => _residency.MaxLoras;

    /// <summary>The adapters of the rows running now and of the requests waiting (vLLM's <c>lora_requests_info</c>), as
    /// of the last scheduler step; any thread.</summary>
    public AdapterActivity AdapterActivity() => _scheduler.AdapterActivity;

    public bool HasAdapter(string name) => _adapters.Has(name);

    /// <summary>Requests waiting for a slot.</summary>
    public int Queued => _scheduler.Queued;
    /// <summary>Rows holding a KV slot.</summary>
    public int Running => _scheduler.Running;
    public bool IsStopping => _scheduler.IsStopping;

    /// <summary>Why the engine can no longer serve (a pipeline rank stopped answering), or null. Set before the process
    /// ends, so that a readiness probe reads false first.</summary>
    public string? Fault => Volatile.Read(ref _fault);
    private string? _fault;

    /// <summary>Ready for new requests: loaded, not draining and not faulted (what <c>/ready</c> reports).</summary>
    public bool IsReady => !IsStopping && Fault is null;

    /// <summary>Marks the engine unable to serve (the first reason stays) and refuses new requests.</summary>
    internal void MarkFaulted(string reason)
    {
        Interlocked.CompareExchange(ref _fault, reason, null);
        _scheduler.BeginShutdown();
    }

    /// <summary>Queues a request; its events (one per generated token, the last one final) arrive on the returned
    /// reader. Throws <see cref="ServingException"/> for a request it will not take.</summary>
    public ChannelReader<EngineEvent> Submit(EngineRequest request)
    {
        request.Check(_model.Config.VocabSize, Options.MaxModelLen, Options.SchedulingPolicy);
        var row = new EngineRow(request, Tokenizer, _model.Device);
        try
        {
            if (_scheduler.IsStopping) throw ServingException.ShuttingDown();
            if (request.Adapter is { } name) _adapters.Acquire(name);
        }
        catch
        {
            row.Dispose();
            throw;
        }
        // From here the scheduler owns the row: it releases the adapter when the row ends or is refused.
        return _scheduler.Enqueue(row);
    }

    /// <summary>Registers a PEFT adapter folder as <paramref name="name"/>: the folder is checked completely (config,
    /// every tensor's key and shape against the model) on the caller's thread, then the name becomes visible. Its weights
    /// are read when a request first needs them, except a <paramref name="pinned"/> adapter's, which are read now and
    /// stay on the device.</summary>
    public async Task LoadAdapterAsync(string name, string dir, bool pinned = false)
    {
        _adapters.EnsureFree(name);
        PeftAdapterFiles.Check(dir, _shapes);
        await _scheduler.RunOnOwnerThread(() =>
        {
            _adapters.EnsureFree(name);
            _residency.Add(name, dir, pinned);
            _adapters.Register(name);
        }).ConfigureAwait(false);
    }

    /// <summary>Hides the adapter from new requests at once, waits for its in-flight requests, then frees it.</summary>
    public async Task UnloadAdapterAsync(string name)
    {
        await _adapters.HideAndDrainAsync(name).ConfigureAwait(false);
        await _scheduler.RunOnOwnerThread(() =>
        {
            _residency.Remove(name);
            _adapters.Remove(name);
            _scheduler.Forward.AdapterRemoved(name);
        }).ConfigureAwait(false);
    }

    /// <summary>Refuses new requests from now on (they get <see cref="ServingErrorKind.ShuttingDown"/>).</summary>
    public void BeginShutdown() => _scheduler.BeginShutdown();

    /// <summary>Refuses new requests and waits for the queued and running ones to finish; past the deadline the rest
    /// are ended (their streams close). Returns whether everything finished in time.</summary>
    public Task<bool> DrainAsync(TimeSpan deadline) => _scheduler.DrainAsync(deadline);

    public void Dispose()
    {
        _scheduler.Dispose();
        _residency.Dispose();
    }

    /// <summary>Native tensors the scheduler thread holds alive (TorchSharp counts per thread): between requests this
    /// returns to the same figure, or something leaked.</summary>
    internal async Task<long> SchedulerLiveTensorsAsync()
    {
        long count = 0;
        await _scheduler.RunOnOwnerThread(() => count = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount).ConfigureAwait(false);
        return count;
    }

    /// <summary>The residency, for tests that hold a read (<see cref="AdapterResidency.BeforeRead"/>) or count them.</summary>
    internal AdapterResidency Residency => _residency;

    /// <summary>How many decode steps ran in managed code (one process only; tests check that a lone row takes it).</summary>
    internal long ManagedSteps => _scheduler.Forward is LocalStepForward local ? local.ManagedSteps : 0;

    /// <summary>The resident adapters (least recently used first) and those in host memory, read between two steps.</summary>
    internal async Task<(IReadOnlyList<string> Resident, IReadOnlyList<string> InHost)> ResidencyAsync()
    {
        IReadOnlyList<string> resident = [], inHost = [];
        await _scheduler.RunOnOwnerThread(() => (resident, inHost) = (_residency.Resident, _residency.InHost)).ConfigureAwait(false);
        return (resident, inHost);
    }

    /// <summary>Requests waiting and running, read between two steps: during admission the scheduler takes a waiting
    /// request out to look at it and may put it back, so <see cref="Queued"/> read from another thread can be one short.</summary>
    internal async Task<(int Queued, int Running)> CountsBetweenStepsAsync()
    {
        (int queued, int running) = (0, 0);
        await _scheduler.RunOnOwnerThread(() => (queued, running) = (_scheduler.Queued, _scheduler.Running)).ConfigureAwait(false);
        return (queued, running);
    }

    /// <summary>Blocks the prefix cache holds, read between two steps.</summary>
    internal async Task<int> PrefixCachedBlocksAsync()
    {
        int count = 0;
        await _scheduler.RunOnOwnerThread(() => count = _scheduler.PrefixCachedBlocks).ConfigureAwait(false);
        return count;
    }

    /// <summary>Holds the scheduler between two steps until disposed, so that tests can fill the queue deterministically.</summary>
    internal IDisposable PauseForTests()
    {
        var release = new ManualResetEventSlim();
        var paused = new ManualResetEventSlim();
        _ = _scheduler.RunOnOwnerThread(() => { paused.Set(); release.Wait(); });
        paused.Wait();
        return new Resume(release);
    }

    private sealed class Resume(ManualResetEventSlim release) : IDisposable
    {
        public void Dispose() => release.Set();
    }
}
