using System.Threading.Channels;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Serving;

/// <summary>
/// Continuous batching over one model and its adapters (Orca / vLLM style, at token granularity). One scheduler thread
/// owns the model, the KV slot pool and every tensor; other threads only submit requests and read their events.
/// Each iteration: run adapter loads/unloads, drop cancelled rows, prefill newcomers into free slots (up to a token
/// budget, so running streams keep flowing), then one decode step for all running rows. A row leaves the moment it
/// finishes and its slot is reused at the next iteration: nobody waits for the slowest sequence of a batch.
/// Rows may name different adapters: every LoRA projection applies them in one gathered batched matmul
/// (<see cref="StackedLora"/>).
/// </summary>
public sealed class ServingEngine : IDisposable
{
    private readonly LlamaModel _model;
    private readonly EngineOptions _options;
    private readonly IEngineObserver? _observer;
    private readonly SlotKvCache _cache;
    private readonly LoraRowSelection _selection = new();
    private readonly List<EngineRow> _rows = [];
    private readonly LinkedList<EngineRow> _queue = new();
    private readonly Queue<Action> _commands = new();
    private readonly Dictionary<string, AdapterEntry> _adapters = new(StringComparer.Ordinal);
    private readonly List<StackedLora> _stacks = [];
    private Dictionary<string, long> _stackIndex = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _wake = new(0);
    private readonly object _lock = new();
    private readonly Thread _thread;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _stopping, _abort, _exit;
    private int _running;
    // A prompt longer than the per-step prefill budget is prefilled a chunk per iteration in the pool's last slot,
    // between decode steps, and joins the running rows when its last chunk is done.
    private EngineRow? _chunked;
    private int _chunkedDone;
    private int ChunkSlot => _options.MaxBatch - 1;

    /// <summary>Starts the scheduler on <paramref name="model"/>; adapters already loaded into it are served under their names.</summary>
    public ServingEngine(LlamaModel model, ITextTokenizer tokenizer, EngineOptions options, IEngineObserver? observer = null)
    {
        options.Validate(model.Config.MaxPositionEmbeddings);
        _model = model;
        Tokenizer = tokenizer;
        _options = options;
        _observer = observer;
        model.eval();
        _cache = new SlotKvCache(model.Config, options.MaxBatch, options.MaxModelLen, model.ComputeDType, model.Device);
        foreach (string name in LoraInjector.AdapterNames(model)) _adapters[name] = new AdapterEntry(name);
        RebuildStacks();
        _thread = new Thread(Loop) { IsBackground = true, Name = "finqlora-scheduler" };
        _thread.Start();
    }

    public ITextTokenizer Tokenizer { get; }
    public LlamaConfig Config => _model.Config;
    public EngineOptions Options => _options;
    public long KvCacheBytes => _cache.Bytes;

    /// <summary>Adapters requests may name now (not those being unloaded), in load order.</summary>
    public IReadOnlyList<string> Adapters
    {
        get { lock (_lock) return _adapters.Values.Where(a => !a.Unloading).Select(a => a.Name).ToList(); }
    }

    public bool HasAdapter(string name)
    {
        lock (_lock) return _adapters.TryGetValue(name, out var a) && !a.Unloading;
    }

    /// <summary>Requests waiting for a slot.</summary>
    public int Queued { get { lock (_lock) return _queue.Count; } }
    /// <summary>Rows holding a KV slot.</summary>
    public int Running => Volatile.Read(ref _running);
    public bool IsStopping => _stopping;

    /// <summary>Queues a request; its events (one per generated token, the last one final) arrive on the returned
    /// reader. Throws <see cref="ServingException"/> for a request it will not take.</summary>
    public ChannelReader<EngineEvent> Submit(EngineRequest request)
    {
        var s = request.Sampling;
        if (request.PromptIds.Length == 0) throw new ServingException(ServingErrorKind.InvalidRequest, "the prompt is empty after tokenization", "prompt");
        if (request.PromptIds.Any(id => id < 0 || id >= _model.Config.VocabSize))
            throw new ServingException(ServingErrorKind.InvalidRequest, $"prompt token ids must be in [0, {_model.Config.VocabSize})", "prompt");
        if (s.MaxTokens < 1) throw new ServingException(ServingErrorKind.InvalidRequest, $"max_tokens must be at least 1 (got {s.MaxTokens})", "max_tokens");
        if (s.Temperature is < 0 or > 2 || double.IsNaN(s.Temperature)) throw new ServingException(ServingErrorKind.InvalidRequest, $"temperature must be in [0, 2] (got {s.Temperature})", "temperature");
        if (s.TopP is <= 0 or > 1 || double.IsNaN(s.TopP)) throw new ServingException(ServingErrorKind.InvalidRequest, $"top_p must be in (0, 1] (got {s.TopP})", "top_p");
        if (s.TopK < 0) throw new ServingException(ServingErrorKind.InvalidRequest, $"top_k must be >= 0 (got {s.TopK})", "top_k");
        if (s.Logprobs is < 0 or > 20) throw new ServingException(ServingErrorKind.InvalidRequest, $"logprobs must be in [0, 20] (got {s.Logprobs})", "logprobs");
        if (request.PromptIds.Length + s.MaxTokens > _options.MaxModelLen)
            throw new ServingException(ServingErrorKind.ContextLength,
                $"This model's maximum context length is {_options.MaxModelLen} tokens. However, you requested {request.PromptIds.Length + s.MaxTokens} tokens ({request.PromptIds.Length} in the prompt, {s.MaxTokens} for the completion). Please reduce the prompt or max_tokens.", "max_tokens");

        var row = new EngineRow(request, Tokenizer, _model.Device);
        lock (_lock)
        {
            if (_stopping) { row.Dispose(); throw new ServingException(ServingErrorKind.ShuttingDown, "the server is shutting down"); }
            if (request.Adapter is { } name)
            {
                if (!_adapters.TryGetValue(name, out var entry) || entry.Unloading)
                {
                    row.Dispose();
                    throw ServingException.UnknownModel(name);
                }
                entry.InFlight++;
            }
            if (_queue.Count - (_options.MaxBatch - _running) >= _options.MaxQueue) // waiting beyond the free slots
            {
                Release(row);
                row.Dispose();
                throw new ServingException(ServingErrorKind.QueueFull, $"the queue is full ({_options.MaxQueue} requests waiting); retry later");
            }
            _queue.AddLast(row);
            _observer?.QueueDepth(_queue.Count);
        }
        _wake.Release();
        return row.Channel.Reader;
    }

    /// <summary>Loads a PEFT adapter folder as <paramref name="name"/> on the scheduler thread, between two steps. The
    /// folder is checked completely before the model is touched; the name becomes visible only once it can serve.</summary>
    public Task LoadAdapterAsync(string name, string dir)
    {
        lock (_lock)
            if (_adapters.ContainsKey(name))
                throw new ServingException(ServingErrorKind.InvalidRequest, $"an adapter named '{name}' is already loaded", "lora_name");
        return RunOnScheduler(() =>
        {
            lock (_lock)
                if (_adapters.ContainsKey(name))
                    throw new ServingException(ServingErrorKind.InvalidRequest, $"an adapter named '{name}' is already loaded", "lora_name");
            try { PeftAdapterFiles.Load(dir, _model, name); }
            catch when (LoraInjector.AdapterNames(_model).Contains(name))
            {
                // Checked files fail only while being read (I/O); take out what was added so the name stays free.
                LoraInjector.DeleteAdapter(_model, name);
                RebuildStacks();
                throw;
            }
            RebuildStacks();
            lock (_lock) _adapters[name] = new AdapterEntry(name);
        });
    }

    /// <summary>Hides the adapter from new requests at once, waits for its in-flight requests, then frees it.</summary>
    public async Task UnloadAdapterAsync(string name)
    {
        Task drained;
        lock (_lock)
        {
            if (!_adapters.TryGetValue(name, out var entry) || entry.Unloading)
                throw ServingException.UnknownModel(name, "lora_name");
            entry.Unloading = true;
            if (entry.InFlight == 0) entry.Drained.TrySetResult();
            drained = entry.Drained.Task;
        }
        await drained.ConfigureAwait(false);
        await RunOnScheduler(() =>
        {
            LoraInjector.DeleteAdapter(_model, name);
            lock (_lock) _adapters.Remove(name);
            RebuildStacks();
        }).ConfigureAwait(false);
    }

    /// <summary>Refuses new requests from now on (they get <see cref="ServingErrorKind.ShuttingDown"/>).</summary>
    public void BeginShutdown() => _stopping = true;

    /// <summary>Refuses new requests and waits for the queued and running ones to finish; past the deadline the rest
    /// are ended (their streams close). Returns whether everything finished in time.</summary>
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

    public void Dispose()
    {
        _stopping = true;
        _abort = true;
        _exit = true;
        _wake.Release();
        _thread.Join();
        foreach (var s in _stacks) s.Dispose();
        foreach (var w in LoraInjector.Wrapped(_model)) w.Lora.Stacked = null;
        _cache.Dispose();
        _wake.Dispose();
    }

    /// <summary>Native tensors the scheduler thread holds alive (TorchSharp counts per thread): between requests this
    /// returns to the same figure, or something leaked.</summary>
    internal async Task<long> SchedulerLiveTensorsAsync()
    {
        long count = 0;
        await RunOnScheduler(() => count = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount).ConfigureAwait(false);
        return count;
    }

    /// <summary>Holds the scheduler between two steps until disposed, so that tests can fill the queue deterministically.</summary>
    internal IDisposable PauseForTests()
    {
        var release = new ManualResetEventSlim();
        var paused = new ManualResetEventSlim();
        _ = RunOnScheduler(() => { paused.Set(); release.Wait(); });
        paused.Wait();
        return new Resume(release);
    }

    private sealed class Resume(ManualResetEventSlim release) : IDisposable
    {
        public void Dispose() => release.Set();
    }

    private Task RunOnScheduler(Action action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_exit) throw new ServingException(ServingErrorKind.ShuttingDown, "the server is shutting down");
            _commands.Enqueue(() =>
            {
                try { action(); done.SetResult(); }
                catch (Exception e) { done.SetException(e); }
            });
        }
        _wake.Release();
        return done.Task;
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
                    if (_rows.Count > 0) DecodeStep();
                }
                catch (Exception e)
                {
                    // A failed step ends the rows it held (their clients see an error); the server keeps running.
                    foreach (var row in _rows.ToList()) End(row, e);
                    if (_chunked is { } chunked) End(chunked, e);
                }
                _observer?.BatchSize(_rows.Count);
                bool idle;
                lock (_lock) idle = _rows.Count == 0 && _chunked is null && _queue.Count == 0 && _commands.Count == 0;
                if (idle && !_exit) _wake.Wait();
            }
            RunCommands();
            AbortAll();
        }
        finally
        {
            ClearAdapters();
            _stopped.TrySetResult();
        }
    }

    private void RunCommands()
    {
        while (true)
        {
            Action? command;
            lock (_lock) if (!_commands.TryDequeue(out command)) return;
            command();
        }
    }

    private void AbortAll()
    {
        foreach (var row in _rows.ToList()) End(row, null);
        if (_chunked is { } chunked) End(chunked, null);
        while (TryDequeue(out var row)) End(row, null);
    }

    private void DropCancelled()
    {
        foreach (var row in _rows.Where(r => r.Request.Cancellation.IsCancellationRequested).ToList()) End(row, null);
        if (_chunked is { Request.Cancellation.IsCancellationRequested: true } chunked) End(chunked, null);
        List<EngineRow> cancelled;
        lock (_lock)
        {
            cancelled = _queue.Where(r => r.Request.Cancellation.IsCancellationRequested).ToList();
            foreach (var r in cancelled) _queue.Remove(r);
        }
        foreach (var row in cancelled) End(row, null);
    }

    private bool TryDequeue(out EngineRow row)
    {
        lock (_lock)
        {
            if (_queue.First is { } first)
            {
                _queue.RemoveFirst();
                _observer?.QueueDepth(_queue.Count);
                row = first.Value;
                return true;
            }
        }
        row = null!;
        return false;
    }

    /// <summary>Takes waiting requests into free slots and prefills them together, right-padded to the longest, while
    /// the padded size stays within the per-step budget. A prompt longer than the budget starts a chunked prefill
    /// instead (one at a time, in the last slot), so that no single forward holds the running streams up for long.</summary>
    private void Admit()
    {
        var group = new List<EngineRow>();
        int longest = 0;
        // while a chunked prefill holds the last slot, running rows fit in the others
        int Capacity() => _chunked is null ? _options.MaxBatch : _options.MaxBatch - 1;
        while (_rows.Count + group.Count < Capacity() && TryDequeue(out var row))
        {
            if (row.Request.Cancellation.IsCancellationRequested) { End(row, null); continue; }
            if (row.Request.PromptIds.Length > _options.PrefillTokensPerStep)
            {
                if (group.Count > 0 || _chunked is not null)
                {
                    lock (_lock) _queue.AddFirst(row);
                    break;
                }
                _chunked = row;
                _chunkedDone = 0;
                Interlocked.Increment(ref _running);
                continue;
            }
            int t = Math.Max(longest, row.Request.PromptIds.Length);
            if (group.Count > 0 && t * (group.Count + 1) > _options.PrefillTokensPerStep)
            {
                lock (_lock) _queue.AddFirst(row);
                break;
            }
            longest = t;
            group.Add(row);
        }
        if (group.Count == 0) return;
        foreach (var row in group)
        {
            row.Slot = _rows.Count;
            _rows.Add(row);
            Interlocked.Increment(ref _running);
        }
        try { Prefill(group, longest); }
        catch (Exception e)
        {
            foreach (var row in group.Where(r => r.Slot >= 0).OrderByDescending(r => r.Slot)) End(row, e);
        }
    }

    /// <summary>One forward over the newcomers' prompts (slots consecutive at the end of the running rows): row r sees
    /// its own positions up to its length, causally; each row's logits are read at its last prompt token.</summary>
    private void Prefill(List<EngineRow> group, int longest)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = _model.Device;
        int k = group.Count, t = longest;
        var flat = new long[k * t];
        var lengthValues = new long[k];
        for (int r = 0; r < k; r++)
        {
            var prompt = group[r].Request.PromptIds;
            lengthValues[r] = prompt.Length;
            for (int c = 0; c < t; c++) flat[r * t + c] = c < prompt.Length ? prompt[c] : Tokenizer.PadId;
        }
        var ids = tensor(flat, [k, t], device: device);
        var lengths = tensor(lengthValues, device: device);
        var positions = arange(0, t, ScalarType.Int64, device).unsqueeze(0).expand(k, t);
        var query = arange(0, t, ScalarType.Int64, device).view(1, 1, t, 1);
        var key = arange(0, t, ScalarType.Int64, device).view(1, 1, 1, t);
        var visible = key.le(query).logical_and(key.lt(lengths.view(k, 1, 1, 1)));       // [k, 1, t, t]
        var mask = zeros([k, 1, t, t], ScalarType.Float32, device).masked_fill(visible.logical_not(), float.MinValue);
        _cache.BeginPrefill(group[0].Slot, k);
        Tensor logits;
        SelectAdapters(group);
        try
        {
            var h = _model.RunLayers(_model.Embed(ids), 0, _model.Layers.Count, positions, mask, _cache);
            var last = (lengths - 1).view(k, 1, 1).expand(k, 1, h.shape[2]);
            logits = _model.Head(h.gather(1, last)).select(1, 0);  // [k, vocab]
        }
        finally { ClearAdapters(); }
        for (int r = 0; r < k; r++) group[r].Length = (int)lengthValues[r];
        Sample(group, logits);
    }

    /// <summary>The next chunk (up to the per-step budget) of the long prompt in <see cref="ChunkSlot"/>: its queries see
    /// the chunks before them and causally their own; after the last chunk the row moves to the end of the running rows
    /// and its first token is sampled.</summary>
    private void PrefillChunk()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var row = _chunked!;
        var device = _model.Device;
        var prompt = row.Request.PromptIds;
        int start = _chunkedDone, c = Math.Min(_options.PrefillTokensPerStep, prompt.Length - start), end = start + c;
        var ids = tensor(prompt[start..end].Select(i => (long)i).ToArray(), [1, c], device: device);
        var positions = arange(start, end, ScalarType.Int64, device).unsqueeze(0);
        var query = arange(start, end, ScalarType.Int64, device).view(1, 1, c, 1);
        var key = arange(0, end, ScalarType.Int64, device).view(1, 1, 1, end);
        var mask = zeros([1, 1, c, end], ScalarType.Float32, device).masked_fill(key.gt(query), float.MinValue);
        _cache.BeginPrefill(ChunkSlot, 1, offset: start);
        Tensor? logits = null;
        SelectAdapters([row]);
        try
        {
            var h = _model.RunLayers(_model.Embed(ids), 0, _model.Layers.Count, positions, mask, _cache);
            if (end == prompt.Length) logits = _model.Head(h.narrow(1, c - 1, 1)).select(1, 0); // [1, vocab]
        }
        finally { ClearAdapters(); }
        _chunkedDone = end;
        if (logits is null) return;
        _chunked = null;
        row.Slot = _rows.Count;
        _cache.Move(ChunkSlot, row.Slot, prompt.Length);
        _rows.Add(row);
        row.Length = prompt.Length;
        Sample([row], logits);
    }

    private void DecodeStep()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = _model.Device;
        var rows = _rows.ToArray();
        int n = rows.Length;
        var lengthValues = rows.Select(r => (long)r.Length).ToArray();
        int span = (int)lengthValues.Max() + 1;
        var feed = tensor(rows.Select(r => (long)r.LastToken).ToArray(), [n, 1], device: device);
        var lengths = tensor(lengthValues, device: device);
        // Row r sees its own positions 0..length[r] (the token fed now included); the rest of the span is masked.
        var visible = arange(0, span, ScalarType.Int64, device).view(1, span).le(lengths.view(n, 1));
        var mask = zeros([n, 1, 1, span], ScalarType.Float32, device).masked_fill(visible.logical_not().view(n, 1, 1, span), float.MinValue);
        _cache.BeginDecode(arange(0, n, ScalarType.Int64, device), lengths, span);
        Tensor logits;
        SelectAdapters(rows);
        try
        {
            var h = _model.RunLayers(_model.Embed(feed), 0, _model.Layers.Count, lengths.view(n, 1), mask, _cache);
            logits = _model.Head(h).select(1, 0);  // [n, vocab]
        }
        finally { ClearAdapters(); }
        foreach (var row in rows) row.Length++;
        Sample(rows, logits);
    }

    /// <summary>Sets each row's adapter for the next forward; <see cref="ClearAdapters"/> afterwards leaves the model as
    /// it was for anyone else (a stale selection would apply to a batch of another size).</summary>
    private void SelectAdapters(IReadOnlyList<EngineRow> rows)
    {
        var index = rows.Select(r => r.Request.Adapter is { } a ? _stackIndex[a] : 0L).ToArray();
        var t = tensor(index, device: _model.Device);
        t.DetachFromDisposeScope();
        _selection.Rows = t;
        _selection.BaseOnly = index.All(i => i == 0);
    }

    private void ClearAdapters()
    {
        _selection.Rows?.Dispose();
        _selection.Rows = null;
        _selection.BaseOnly = false;
    }

    /// <summary>Picks each row's token from logits [n, vocab] (row i = rows[i]) with its own sampler, sends the events
    /// and retires the rows that finished.</summary>
    private void Sample(IReadOnlyList<EngineRow> rows, Tensor logits)
    {
        long[] argmax = logits.argmax(-1).cpu().data<long>().ToArray();
        Tensor? logp = rows.Any(r => r.Request.Sampling.Logprobs is not null) ? logits.log_softmax(-1) : null;
        var finished = new List<EngineRow>();
        for (int i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            int token = row.Greedy ? (int)argmax[i] : (int)row.Sampler!.Next(logits.narrow(0, i, 1)).cpu().item<long>();
            TokenLogprob? chosen = null;
            List<TokenLogprob>? top = null;
            if (row.Request.Sampling.Logprobs is { } k && logp is not null)
            {
                var rowLogp = logp[i];
                int? previous = row.Generated > 0 ? row.LastToken : row.Request.PromptIds[^1];
                chosen = Logprob(previous, token, rowLogp[token].item<float>());
                top = [];
                if (k > 0)
                {
                    var (values, indices) = rowLogp.topk(k);
                    var v = values.cpu().data<float>().ToArray();
                    var ix = indices.cpu().data<long>().ToArray();
                    for (int j = 0; j < k; j++) top.Add(Logprob(previous, (int)ix[j], v[j]));
                }
            }
            var ev = row.Accept(token, chosen, top, _observer);
            row.Channel.Writer.TryWrite(ev);
            if (row.Finished) finished.Add(row);
        }
        foreach (var row in finished.OrderByDescending(r => r.Slot)) End(row, null);
    }

    private TokenLogprob Logprob(int? previous, int id, float value) => new(id, TokenText(previous, id), value);

    /// <summary>A token's text as it reads after <paramref name="previous"/>: SentencePiece decoders drop the leading
    /// space of the first token, so a token alone would read "there" where the output reads " there".</summary>
    private string TokenText(int? previous, int id)
    {
        if (previous is not { } p) return Tokenizer.Decode([id], skipSpecialTokens: false);
        string before = Tokenizer.Decode([p], skipSpecialTokens: false);
        string both = Tokenizer.Decode([p, id], skipSpecialTokens: false);
        return both.StartsWith(before, StringComparison.Ordinal) ? both[before.Length..] : Tokenizer.Decode([id], skipSpecialTokens: false);
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
                _cache.Move(last, row.Slot, moved.Length);
                moved.Slot = row.Slot;
                _rows[row.Slot] = moved;
            }
            _rows.RemoveAt(last);
            row.Slot = -1;
            Interlocked.Decrement(ref _running);
        }
        row.Channel.Writer.TryComplete(error);
        lock (_lock) Release(row);
        row.Dispose();
    }

    private void Release(EngineRow row)
    {
        if (row.Request.Adapter is { } name && _adapters.TryGetValue(name, out var entry))
        {
            entry.InFlight--;
            if (entry.Unloading && entry.InFlight == 0) entry.Drained.TrySetResult();
        }
    }

    /// <summary>Restacks every projection's adapters after a load or unload (scheduler thread only).</summary>
    private void RebuildStacks()
    {
        foreach (var s in _stacks) s.Dispose();
        _stacks.Clear();
        var names = LoraInjector.AdapterNames(_model);
        var order = new List<string?> { null };
        order.AddRange(names);
        _stackIndex = names.Select((n, i) => (n, i)).ToDictionary(x => x.n, x => (long)x.i + 1, StringComparer.Ordinal);
        foreach (var w in LoraInjector.Wrapped(_model))
        {
            var stacked = StackedLora.Build(w.Lora, order, _selection);
            w.Lora.Stacked = stacked;
            _stacks.Add(stacked);
        }
    }

    private sealed class AdapterEntry(string name)
    {
        public string Name { get; } = name;
        public int InFlight { get; set; }
        public bool Unloading { get; set; }
        public TaskCompletionSource Drained { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
