using System.Diagnostics.CodeAnalysis;
using System.Threading.Channels;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Models;
using FinQLoRA.Serving.PrefixCaching;
using FinQLoRA.Serving.Residency;

namespace FinQLoRA.Serving;

/// <summary>
/// Continuous batching (Orca / vLLM style, at token granularity) on one owner thread, which alone touches the model,
/// the KV slot pool and every tensor; other threads only submit requests and commands. Each iteration: run the queued
/// commands (adapter loads/unloads), drop cancelled rows, admit newcomers into free slots and prefill them (up to a
/// token budget, so running streams keep flowing), prefill the next chunk of a long prompt, then one decode step for
/// all running rows. A row leaves the moment it finishes and its slot is reused at the next iteration: nobody waits for
/// the slowest sequence of a batch. With a <see cref="PrefixCache"/>, a newcomer first takes the longest cached prefix
/// of its prompt into its slot and prefills only the rest; its full blocks are kept once its prompt is in. What a step
/// computes is the <see cref="ModelRunner"/>'s; which rows, in which slots and when is decided here.
/// </summary>
internal sealed class Scheduler : IDisposable
{
    private readonly EngineOptions _options;
    private readonly IEngineObserver? _observer;
    private readonly SlotKvCache _cache;
    private readonly PrefixCache? _prefix;
    private readonly ModelRunner _runner;
    private readonly IStepForward _forward;
    private readonly AdapterRegistry _adapters;
    private readonly AdapterResidency _residency;
    private readonly List<EngineRow> _rows = [];
    private readonly WaitingQueue _queue;
    private readonly Queue<Action> _commands = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly object _commandsLock = new(); // guards _commands
    private readonly Thread _thread;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _stopping, _abort, _exit;
    private int _running;
    // A prompt longer than the per-step prefill budget is prefilled a chunk per iteration in the pool's last slot,
    // between decode steps, and joins the running rows when its last chunk is done.
    private EngineRow? _chunked;
    private int _chunkedDone;
    private int ChunkSlot => _options.MaxBatch - 1;
    // set by Admit: requests wait but none could be admitted (their adapters are being read), so an idle loop may sleep
    private bool _stalled;
    private AdapterActivity _activity;

    /// <param name="forward">the layers of a step over the slot pool this scheduler allocates (one process or a pipeline)</param>
    public Scheduler(DecoderModel model, ITextTokenizer tokenizer, EngineOptions options, AdapterRegistry adapters, AdapterResidency residency,
        IEngineObserver? observer, Func<SlotKvCache, IStepForward> forward)
    {
        _options = options;
        _observer = observer;
        _adapters = adapters;
        _residency = residency;
        _activity = new AdapterActivity([], [], residency.MaxLoras);
        _queue = new WaitingQueue(options.MaxQueue, observer);
        _cache = new SlotKvCache(model.Config, options.MaxBatch, options.MaxModelLen, model.ComputeDType, model.Device, model.FirstLayer, model.Layers.Count);
        if (options.PrefixCacheBytes > 0)
        {
            _prefix = new PrefixCache(model.Config, options.PrefixBlockTokens, options.PrefixCacheBytes, model.ComputeDType, model.Device);
            if (_prefix.Capacity == 0)
            {
                long blockBytes = _prefix.BlockBytes;
                _prefix.Dispose();
                _cache.Dispose();
                throw UserInputException.About($"{new ConfigField("prefix_cache_gib")} gives {options.PrefixCacheBytes} bytes, less than one block of {options.PrefixBlockTokens} tokens ({blockBytes} bytes); raise it, or 0 turns prefix caching off");
            }
        }
        _forward = forward(_cache);
        _runner = new ModelRunner(model, tokenizer, _forward, residency, observer);
        residency.ReadFinished = () => { try { _wake.Release(); } catch (ObjectDisposedException) { } };
        _thread = new Thread(Loop) { IsBackground = true, Name = "finqlora-scheduler" };
        _thread.Start();
    }

    public long KvCacheBytes => _cache.Bytes;
    /// <summary>The layers of a step (touch it on the owner thread only).</summary>
    public IStepForward Forward => _forward;
    /// <summary>The prefix cache's pool (0 when off).</summary>
    public long PrefixCacheBytes => _prefix?.Bytes ?? 0;
    /// <summary>Blocks the prefix cache holds now (read it between steps, e.g. through <see cref="RunOnOwnerThread"/>).</summary>
    public int PrefixCachedBlocks => _prefix?.Count ?? 0;
    /// <summary>Requests waiting for a slot.</summary>
    public int Queued => _queue.Count;
    /// <summary>Rows holding a KV slot.</summary>
    public int Running => Volatile.Read(ref _running);
    public bool IsStopping => _stopping;
    /// <summary>The adapters of the running rows and of the waiting requests, as of the last step.</summary>
    public AdapterActivity AdapterActivity => Volatile.Read(ref _activity);

    /// <summary>Queues a checked row (its adapter already acquired); refused while stopping or when the queue is full
    /// beyond the free slots, in which case the row is released and disposed here.</summary>
    public ChannelReader<EngineEvent> Enqueue(EngineRow row)
    {
        if (_stopping) Refuse(row, ServingException.ShuttingDown());
        if (!_queue.TryAdd(row, _options.MaxBatch - Running))
            Refuse(row, new ServingException(ServingErrorKind.QueueFull, $"the queue is full ({_options.MaxQueue} requests waiting); retry later"));
        _wake.Release();
        return row.Channel.Reader;
    }

    [DoesNotReturn]
    private void Refuse(EngineRow row, ServingException error)
    {
        _adapters.Release(row.Request.Adapter);
        row.Dispose();
        throw error;
    }

    /// <summary>Runs <paramref name="action"/> on the owner thread between two steps.</summary>
    public Task RunOnOwnerThread(Action action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_commandsLock)
        {
            if (_exit) throw ServingException.ShuttingDown();
            _commands.Enqueue(() =>
            {
                try { action(); done.SetResult(); }
                catch (Exception e) { done.SetException(e); }
            });
        }
        _wake.Release();
        return done.Task;
    }

    /// <summary>Refuses new requests from now on (they get <see cref="ServingErrorKind.ShuttingDown"/>).</summary>
    public void BeginShutdown() => _stopping = true;

    /// <summary>Waits for the queued and running requests; past <paramref name="deadline"/> the rest are ended (their
    /// streams close). Returns whether everything finished in time.</summary>
    public async Task<bool> DrainAsync(TimeSpan deadline)
    {
        BeginShutdown();
        var until = DateTime.UtcNow + deadline;
        while (Running + Queued > 0 && DateTime.UtcNow < until) await Task.Delay(20).ConfigureAwait(false);
        if (Running + Queued == 0) return true;
        _abort = true;
        _wake.Release();
        while (Running + Queued > 0 && !_stopped.Task.IsCompleted) await Task.Delay(20).ConfigureAwait(false);
        return false;
    }

    /// <summary>Ends every row and stops the owner thread; then frees the KV pool.</summary>
    public void Dispose()
    {
        _stopping = true;
        _abort = true;
        _exit = true;
        _wake.Release();
        _thread.Join();
        _cache.Dispose();
        _prefix?.Dispose();
        _wake.Dispose();
    }

    private void Loop()
    {
        try
        {
            while (!_exit)
            {
                RunCommands();
                if (_abort) AbortAll();
                DropCancelled();
                try
                {
                    Admit();
                    if (_chunked is not null) PrefillChunk();
                    if (_rows.Count > 0) EndFinished(_runner.Decode(_rows.ToArray()));
                }
                catch (Exception e)
                {
                    // A failed step ends the rows it held (their clients see an error); the server keeps running.
                    foreach (var row in _rows.ToList()) End(row, e);
                    if (_chunked is { } chunked) End(chunked, e);
                }
                _observer?.BatchSize(_rows.Count);
                PublishActivity();
                ReportIteration();
                // A submit, command or finished adapter read after this check has released the semaphore already: the
                // wait returns at once. Requests that wait only for their adapters' reads do not keep the loop spinning.
                bool idle = _rows.Count == 0 && _chunked is null && (_queue.Count == 0 || _stalled) && PendingCommands == 0;
                if (idle && !_exit)
                {
                    if (_forward.IdleTick is not { } tick) _wake.Wait();
                    else if (!_wake.Wait(tick)) _forward.Idle();
                }
            }
            RunCommands();
            AbortAll();
        }
        finally
        {
            _residency.ClearSelection();
            _forward.Dispose(); // a pipeline tells its other ranks to stop, from the thread that drove them
            _stopped.TrySetResult();
        }
    }

    /// <summary>What vLLM's scheduler stats report each iteration: the KV slots in use and the adapters of the running
    /// and the waiting requests, from the activity just published (the one source of <see cref="AdapterActivity"/>, so
    /// that <c>max_lora</c> is the residency's <c>--max-loras</c>).</summary>
    private void ReportIteration()
    {
        if (_observer is null) return;
        var activity = _activity;
        _observer.IterationState((double)Running / _options.MaxBatch, Sorted(activity.Running), Sorted(activity.Waiting), activity.MaxLoras);
    }

    private static List<string> Sorted(IReadOnlyList<string> names)
    {
        var list = names.ToList();
        list.Sort(StringComparer.Ordinal);
        return list;
    }

    private int PendingCommands { get { lock (_commandsLock) return _commands.Count; } }

    private void RunCommands()
    {
        while (true)
        {
            Action? command;
            lock (_commandsLock) if (!_commands.TryDequeue(out command)) return;
            command();
        }
    }

    private void AbortAll()
    {
        foreach (var row in _rows.ToList()) End(row, null);
        if (_chunked is { } chunked) End(chunked, null);
        while (_queue.TryTake(out var row)) End(row, null);
    }

    private void DropCancelled()
    {
        foreach (var row in _rows.Where(r => r.Request.Cancellation.IsCancellationRequested).ToList()) End(row, null);
        if (_chunked is { Request.Cancellation.IsCancellationRequested: true } chunked) End(chunked, null);
        foreach (var row in _queue.RemoveCancelled()) End(row, null);
    }

    /// <summary>Takes waiting requests into free slots and prefills them together, right-padded to the most tokens any
    /// of them computes (its prompt less its prefix-cache hit), while the padded size stays within the per-step budget
    /// and every row's hit plus that size within a slot. A prompt that computes more than the budget starts a chunked
    /// prefill instead (one at a time, in the last slot, from its hit on), so that no single forward holds the running
    /// streams up for long. Hits are copied into the slots before the forward; the prompts' new blocks are kept after it.</summary>
    private void Admit()
    {
        _stalled = false;
        if (_queue.Count == 0) return;
        foreach (var failure in _residency.Plan(_queue.Adapters()))
            foreach (var row in _queue.RemoveWhere(r => r.Request.Adapter == failure.Name)) End(row, failure.Error);
        var group = new List<EngineRow>();
        var hits = new List<int[]>();
        int longest = 0, furthest = 0;
        bool started = false;
        // while a chunked prefill holds the last slot, running rows fit in the others
        int Capacity() => _chunked is null ? _options.MaxBatch : _options.MaxBatch - 1;
        // The oldest request whose adapter is on the device (or can come onto it now) goes first; the others keep their turn.
        while (_rows.Count + group.Count < Capacity() && _queue.TryTake(r => _residency.CanAdmit(r.Request.Adapter), out var row))
        {
            if (row.Request.Cancellation.IsCancellationRequested) { End(row, null); continue; }
            _residency.Admit(row.Request.Adapter);
            row.HoldsAdapter = true;
            var hit = Match(row);
            int cached = hit.Length * (_prefix?.BlockTokens ?? 0);
            int fresh = row.Request.PromptIds.Length - cached + row.Request.BranchTokens;
            if (fresh > _options.PrefillTokensPerStep)
            {
                if (group.Count > 0 || _chunked is not null)
                {
                    PutBack(row);
                    break;
                }
                _chunked = row;
                started = true;
                Interlocked.Increment(ref _running);
                _observer?.Admitted(row.Request.Adapter, row.SinceSubmit);
                TakeHit(row, hit, ChunkSlot);
                _chunkedDone = row.CachedTokens;
                continue;
            }
            int t = Math.Max(longest, fresh), reach = Math.Max(furthest, cached);
            if (group.Count > 0 && (t * (group.Count + 1) > _options.PrefillTokensPerStep || reach + t > _options.MaxModelLen))
            {
                PutBack(row);
                break;
            }
            longest = t;
            furthest = reach;
            group.Add(row);
            hits.Add(hit);
            _observer?.Admitted(row.Request.Adapter, row.SinceSubmit);
        }
        _stalled = group.Count == 0 && !started && _queue.Count > 0;
        if (group.Count == 0) return;
        foreach (var row in group)
        {
            row.Slot = _rows.Count;
            _rows.Add(row);
            Interlocked.Increment(ref _running);
        }
        try
        {
            for (int i = 0; i < group.Count; i++) TakeHit(group[i], hits[i], group[i].Slot);
            var finished = _runner.Prefill(group, longest);
            foreach (var row in group) KeepBlocks(row, row.Slot);
            EndFinished(finished);
        }
        catch (Exception e)
        {
            foreach (var row in group.Where(r => r.Slot >= 0).OrderByDescending(r => r.Slot)) End(row, e);
        }
    }

    /// <summary>Returns a row just taken to its place in the queue; its adapter no longer counts it.</summary>
    private void PutBack(EngineRow row)
    {
        _residency.Release(row.Request.Adapter);
        row.HoldsAdapter = false;
        _queue.PutBack(row);
    }

    private void PublishActivity()
    {
        var running = _rows.Select(r => r.Request.Adapter).Append(_chunked?.Request.Adapter).OfType<string>().Distinct().ToList();
        var waiting = _queue.Count == 0 ? [] : _queue.Adapters().Distinct().ToList();
        var last = _activity;
        if (!running.SequenceEqual(last.Running) || !waiting.SequenceEqual(last.Waiting))
            Volatile.Write(ref _activity, new AdapterActivity(running, waiting, _residency.MaxLoras));
    }

    /// <summary>The pool blocks of the longest cached prefix of the row's prompt, leaving at least the position whose
    /// logits come next to compute: the last prompt token, or for a scoring row the one before its first scored token.</summary>
    private int[] Match(EngineRow row)
    {
        if (_prefix is null) return [];
        var r = row.Request;
        int b = _prefix.BlockTokens;
        row.PrefixKeys ??= PrefixBlockKey.Chain(PrefixBlockKey.Root(_prefix.ModelId, r.CachePartition, _adapters.SerialOf(r.Adapter)),
            r.PromptIds, b, r.CacheableEnd / b);
        int usable = Math.Min(row.PrefixKeys.Length, ((r.ScoreFrom ?? r.PromptIds.Length) - 1) / b);
        return _prefix.Match(row.PrefixKeys.AsSpan(0, usable));
    }

    /// <summary>Copies a row's hit into its slot (before anything may evict those blocks) and counts the query.</summary>
    private void TakeHit(EngineRow row, int[] hit, int slot)
    {
        if (_prefix is null) return;
        _prefix.Load(hit, _cache, slot);
        row.CachedTokens = hit.Length * _prefix.BlockTokens;
        _observer?.PrefixCacheQueried(row.Request.PromptIds.Length, row.CachedTokens);
    }

    /// <summary>Keeps the full blocks of a prefilled prompt that the prefix cache lacks (taken from its slot).</summary>
    private void KeepBlocks(EngineRow row, int slot)
    {
        if (_prefix is not null && row.PrefixKeys is { Length: > 0 } keys) _prefix.Store(keys, _cache, slot);
    }

    /// <summary>The next chunk (up to the per-step budget) of the long prompt in <see cref="ChunkSlot"/>; after the last
    /// one its blocks are kept and the row moves to the end of the running rows, with its first token sampled (a
    /// scoring row ends there).</summary>
    private void PrefillChunk()
    {
        var row = _chunked!;
        int length = row.Request.PromptIds.Length;
        int start = _chunkedDone, end = start + Math.Min(_options.PrefillTokensPerStep, length - start);
        var finished = _runner.PrefillChunk(row, ChunkSlot, start, end);
        _chunkedDone = end;
        if (end < length) return;
        KeepBlocks(row, ChunkSlot);
        if (row.IsScoring)
        {
            End(row, null);
            return;
        }
        _chunked = null;
        row.Slot = _rows.Count;
        _forward.Move(ChunkSlot, row.Slot, length);
        _rows.Add(row);
        row.Length = length;
        EndFinished(finished);
    }

    private void EndFinished(IEnumerable<EngineRow> finished)
    {
        foreach (var row in finished.OrderByDescending(r => r.Slot)) End(row, null);
    }

    /// <summary>Takes a row out (finished, cancelled or failed): its slot is refilled by the last running row, its
    /// stream is closed and its adapter's in-flight count drops.</summary>
    private void End(EngineRow row, Exception? error)
    {
        if (ReferenceEquals(row, _chunked))
        {
            _chunked = null;
            Interlocked.Decrement(ref _running);
        }
        else if (row.Slot >= 0)
        {
            int last = _rows.Count - 1;
            if (row.Slot != last)
            {
                var moved = _rows[last];
                _forward.Move(last, row.Slot, moved.Length);
                moved.Slot = row.Slot;
                _rows[row.Slot] = moved;
            }
            _rows.RemoveAt(last);
            row.Slot = -1;
            Interlocked.Decrement(ref _running);
        }
        row.Channel.Writer.TryComplete(error);
        if (row.HoldsAdapter) _residency.Release(row.Request.Adapter);
        row.HoldsAdapter = false;
        _adapters.Release(row.Request.Adapter);
        row.Dispose();
    }
}
