using System.Threading.Channels;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Tokenization;
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
    {
        options.Validate(model.Config.MaxPositionEmbeddings);
        _model = model;
        Tokenizer = tokenizer;
        Options = options;
        model.eval();
        _shapes = LoraTargetShapes.Of(model);
        _adapters = new AdapterRegistry(LoraInjector.AdapterNames(model));
        _residency = new AdapterResidency(model, options.MaxLoras, options.MaxCpuLoras ?? options.MaxLoras);
        try { _scheduler = new Scheduler(model, tokenizer, options, _adapters, _residency, observer); }
        catch
        {
            _residency.Dispose(); // gives the projections back their plain adapters
            throw;
        }
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

    /// <summary>Queues a request; its events (one per generated token, the last one final) arrive on the returned
    /// reader. Throws <see cref="ServingException"/> for a request it will not take.</summary>
    public ChannelReader<EngineEvent> Submit(EngineRequest request)
    {
        request.Check(_model.Config.VocabSize, Options.MaxModelLen);
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

    /// <summary>The resident adapters (least recently used first) and those in host memory, read between two steps.</summary>
    internal async Task<(IReadOnlyList<string> Resident, IReadOnlyList<string> InHost)> ResidencyAsync()
    {
        IReadOnlyList<string> resident = [], inHost = [];
        await _scheduler.RunOnOwnerThread(() => (resident, inHost) = (_residency.Resident, _residency.InHost)).ConfigureAwait(false);
        return (resident, inHost);
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
