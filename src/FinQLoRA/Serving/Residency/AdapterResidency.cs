using FinQLoRA.Adapters;
using FinQLoRA.Models;

namespace FinQLoRA.Serving.Residency;

/// <summary>
/// Where each registered adapter's weights are (vLLM's LRU adapter managers, S-LoRA's unified adapter pool): the one
/// place that decides the resident set. An adapter is
/// <list type="bullet">
/// <item><b>resident</b>: in the model and at one of the <c>--max-loras</c> indices of the <see cref="AdapterStacks"/>,
/// so rows may name it;</item>
/// <item><b>in host memory</b>: its weights read (fp32, CPU), waiting for an index or kept after leaving the device,
/// at most <c>--max-cpu-loras</c> of those that no request waits for;</item>
/// <item><b>on disk only</b>: read again, on a background task, when a request needs it.</item>
/// </list>
/// A request whose adapter is not resident stays queued (it does not fail) until its weights are in host memory and an
/// index is free, or can be freed: the least recently used resident adapter that no admitted row holds and that is not
/// pinned leaves the device. When every index is held by running rows, the oldest waiting adapter names one victim
/// (the least recently used unpinned one) that takes no new rows until its rows finish and it can leave, so that
/// requests for resident adapters cannot keep a waiting one out for ever. Scheduler thread only, except the
/// background reads, which touch no model.
/// </summary>
internal sealed class AdapterResidency : IDisposable
{
    private readonly DecoderModel _model;
    private readonly LoraTargetShapes _shapes;
    private readonly AdapterStacks _stacks;
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly int _maxCpuLoras;
    private long _clock; // use order for LRU
    private long _diskReads;
    private string? _victim;
    private HashSet<string> _waitedFor = new(StringComparer.Ordinal); // adapters the waiting requests need, as of the last Plan

    /// <summary>Serves the adapters already in <paramref name="model"/> (put there by other code; no folder can give
    /// them back, so their host copies are never dropped): the first <paramref name="maxLoras"/> stay resident, the
    /// rest move to host memory.</summary>
    public AdapterResidency(DecoderModel model, int maxLoras, int maxCpuLoras)
    {
        _model = model;
        _maxCpuLoras = maxCpuLoras;
        _shapes = LoraTargetShapes.Of(model);
        _stacks = new AdapterStacks(model, maxLoras);
        var names = LoraInjector.AdapterNames(model);
        for (int i = 0; i < names.Count; i++)
        {
            var e = _entries[names[i]] = new Entry(names[i], null, pinned: false);
            if (i < maxLoras)
            {
                e.Index = i + 1;
                _stacks.Place(e.Name, e.Index);
            }
            else
            {
                e.Host = HostLoraAdapter.FromModel(model, e.Name);
                RemoveFromModel(e.Name);
            }
        }
    }

    public int MaxLoras => _stacks.Capacity;
    /// <summary>Adapter folders read from disk so far (a re-admission from host memory reads none).</summary>
    public long DiskReads => Interlocked.Read(ref _diskReads);
    /// <summary>Full restacks so far (see <see cref="AdapterStacks.Rebuilds"/>).</summary>
    public int StackRebuilds => _stacks.Rebuilds;
    /// <summary>Runs on the scheduler thread when an adapter is put at a stack index (name, folder or null for one that
    /// came with the model, index): a pipeline mirrors it on the other stages' layers.</summary>
    public Action<string, string?, int>? Placed { get; set; }
    /// <summary>Runs on the scheduler thread when an adapter leaves the device (its index is free).</summary>
    public Action<string>? Vacated { get; set; }
    /// <summary>Runs on the reading task when a read finishes (the scheduler wakes to admit the requests that waited).</summary>
    public Action? ReadFinished { get; set; }
    /// <summary>A seam for tests: awaited on the reading task before a folder is read, so that a test can hold a read.</summary>
    internal Func<string, Task>? BeforeRead { get; set; }
    /// <summary>The folders read now.</summary>
    public int Reading => _entries.Values.Count(e => e.Reading is not null);

    /// <summary>The resident adapters, least recently used first.</summary>
    public IReadOnlyList<string> Resident => _entries.Values.Where(e => e.Index > 0).OrderBy(e => e.LastUse).Select(e => e.Name).ToList();
    /// <summary>The adapters not resident whose weights are in host memory, least recently used first.</summary>
    public IReadOnlyList<string> InHost => _entries.Values.Where(e => e.Index == 0 && e.Host is not null).OrderBy(e => e.LastUse).Select(e => e.Name).ToList();

    /// <summary>Registers a PEFT folder under <paramref name="name"/> (checked already). A pinned adapter is read and
    /// put on the device now and never leaves it; pins are refused beyond what the device holds, and an unpinned adapter
    /// when every index is pinned (it could never run).</summary>
    public void Add(string name, string dir, bool pinned)
    {
        if (_entries.ContainsKey(name)) throw new InvalidOperationException($"adapter '{name}' is registered already");
        int pins = _entries.Values.Count(e => e.Pinned);
        if (pinned && pins >= MaxLoras)
            throw UserInputException.About($"pinning '{name}' makes {pins + 1} pinned adapters, more than {new ConfigField("max_loras")} {MaxLoras} holds on the device; raise it or pin fewer");
        if (!pinned && pins >= MaxLoras)
            throw new ServingException(ServingErrorKind.InvalidRequest, $"all {MaxLoras} device slots for adapters (--max-loras) are pinned, so '{name}' could never run; restart with a higher --max-loras", "lora_name");
        var entry = new Entry(name, dir, pinned);
        if (pinned)
        {
            var (_, weights) = PeftAdapterFiles.ReadToHost(dir, _shapes);
            Interlocked.Increment(ref _diskReads);
            entry.Host = weights;
            int index = FreeOrEvictable() ?? throw new InvalidOperationException($"no device slot is free for the pinned adapter '{name}'");
            _entries[name] = entry;
            MakeResident(entry, index);
            return;
        }
        _entries[name] = entry;
    }

    /// <summary>Forgets a drained adapter (no request holds it): off the device, its host copy freed; a read still
    /// running is dropped when it ends.</summary>
    public void Remove(string name)
    {
        if (!_entries.Remove(name, out var entry)) return;
        if (entry.Index > 0) LeaveDevice(entry);
        entry.Host?.Dispose();
        entry.Host = null;
        entry.Removed = true;
        if (_victim == name) _victim = null;
    }

    /// <summary>Once per admission round, before <see cref="CanAdmit"/>: takes in the reads that ended, starts reads for
    /// the adapters <paramref name="waiting"/> requests need (queue order, repeats allowed; at most <c>--max-loras</c>
    /// adapters read or read and waiting for an index at a time), names the victim if the oldest waiting adapter finds
    /// every index held, and trims host memory to <c>--max-cpu-loras</c>. Returns the adapters whose read failed.</summary>
    public List<AdapterLoadFailure> Plan(IReadOnlyList<string> waiting)
    {
        var failures = new List<AdapterLoadFailure>();
        foreach (var e in _entries.Values.Where(e => e.Reading is { IsCompleted: true }).ToList())
        {
            var read = e.Reading!;
            e.Reading = null;
            if (read.IsCompletedSuccessfully) e.Host = read.Result;
            else failures.Add(new AdapterLoadFailure(e.Name, read.Exception?.InnerException ?? new InvalidOperationException($"reading adapter '{e.Name}' was cancelled")));
        }

        var needed = new List<Entry>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string name in waiting)
            if (seen.Add(name) && _entries.TryGetValue(name, out var e) && e.Index == 0) needed.Add(e);
        int prefetched = needed.Count(e => e.Reading is not null || e.Host is not null);
        foreach (var e in needed.Where(e => e.Reading is null && e.Host is null && e.Dir is not null && failures.All(f => f.Name != e.Name)))
        {
            if (prefetched >= MaxLoras) break;
            StartRead(e);
            prefetched++;
        }

        _victim = needed.Count > 0 && FreeOrEvictable() is null
            ? _entries.Values.Where(e => e.Index > 0 && !e.Pinned).MinBy(e => e.LastUse)?.Name
            : null;

        _waitedFor = needed.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
        TrimHostMemory();
        return failures;
    }

    /// <summary>Drops the host copies beyond <c>--max-cpu-loras</c> of adapters off the device that no waiting request
    /// needs, least recently used first (those that came with the model stay: no folder can give them back).</summary>
    private void TrimHostMemory()
    {
        var spare = _entries.Values.Where(e => e.Index == 0 && e.Host is not null && e.Dir is not null && !_waitedFor.Contains(e.Name))
            .OrderBy(e => e.LastUse).ToList();
        foreach (var e in spare.Take(Math.Max(0, spare.Count - _maxCpuLoras)))
        {
            e.Host!.Dispose();
            e.Host = null;
        }
    }

    /// <summary>Whether a row on <paramref name="name"/> (null: the base) can be admitted now: its adapter resident, or
    /// in host memory with an index free or freeable; never the victim's.</summary>
    public bool CanAdmit(string? name)
    {
        if (name is null) return true;
        if (name == _victim || !_entries.TryGetValue(name, out var e)) return false;
        return e.Index > 0 || (e.Host is not null && FreeOrEvictable() is not null);
    }

    /// <summary>A row on <paramref name="name"/> is admitted (after <see cref="CanAdmit"/>): its adapter comes onto the
    /// device if it is not there (the least recently used idle one leaving), and counts one more row.</summary>
    public void Admit(string? name)
    {
        if (name is null) return;
        var e = _entries[name];
        if (e.Index == 0)
        {
            int index = FreeOrEvictable() ?? throw new InvalidOperationException($"no device slot for adapter '{name}'; CanAdmit said there was");
            MakeResident(e, index);
        }
        e.Active++;
        e.LastUse = ++_clock;
    }

    /// <summary>A row admitted on <paramref name="name"/> has left (finished, cancelled, failed or put back).</summary>
    public void Release(string? name)
    {
        if (name is not null && _entries.TryGetValue(name, out var e)) e.Active--;
    }

    public void Select(IEnumerable<string?> rowAdapters) => _stacks.Select(rowAdapters);
    public void ClearSelection() => _stacks.ClearSelection();

    /// <summary>Frees the stacks and host copies; adapters that came with the model go back into it, so that the model
    /// is left with the adapters it had.</summary>
    public void Dispose()
    {
        _stacks.Dispose();
        foreach (var e in _entries.Values)
        {
            if (e.Dir is null && e.Index == 0 && e.Host is not null) e.Host.Install(_model, e.Name);
            e.Host?.Dispose();
            e.Host = null;
            e.Removed = true;
            e.Reading?.ContinueWith(t => { if (t.IsCompletedSuccessfully) t.Result.Dispose(); }, TaskScheduler.Default);
        }
        // Adapters read from folders leave with the engine; the projections they alone wrapped unwrap again.
        foreach (var e in _entries.Values.Where(e => e.Dir is not null && e.Index > 0))
            LoraInjector.DeleteAdapter(_model, e.Name);
    }

    /// <summary>A free index, else that of the least recently used resident adapter no admitted row holds and that is
    /// not pinned, made free; null when every index is held.</summary>
    private int? FreeOrEvictable()
    {
        int free = _stacks.FreeIndex();
        if (free > 0) return free;
        var idle = _entries.Values.Where(e => e.Index > 0 && e.Active == 0 && !e.Pinned).MinBy(e => e.LastUse);
        return idle?.Index;
    }

    /// <summary>Puts a host-memory adapter at <paramref name="index"/>, first sending the adapter there (idle) to host memory.</summary>
    private void MakeResident(Entry e, int index)
    {
        if (_entries.Values.FirstOrDefault(o => o.Index == index) is { } occupant)
        {
            if (occupant.Active > 0 || occupant.Pinned) throw new InvalidOperationException($"adapter '{occupant.Name}' holds index {index} and may not leave");
            LeaveDevice(occupant);
        }
        e.Host!.Install(_model, e.Name);
        e.Index = index;
        _stacks.Place(e.Name, index);
        Placed?.Invoke(e.Name, e.Dir, index);
    }

    /// <summary>Takes an adapter off the device; its weights stay in host memory (copied out first where no folder can
    /// give them back). Wrapped projections stay wrapped, so the stacks keep their shape.</summary>
    private void LeaveDevice(Entry e)
    {
        e.Host ??= HostLoraAdapter.FromModel(_model, e.Name);
        RemoveFromModel(e.Name);
        _stacks.Vacate(e.Name);
        Vacated?.Invoke(e.Name);
        e.Index = 0;
        if (_victim == e.Name) _victim = null;
        TrimHostMemory();
    }

    private void RemoveFromModel(string name)
    {
        foreach (var w in LoraInjector.Wrapped(_model))
            if (w.Lora.Adapters.ContainsKey(name)) w.Lora.RemoveAdapter(name);
    }

    private void StartRead(Entry e)
    {
        string dir = e.Dir!;
        var hold = BeforeRead;
        var shapes = _shapes;
        e.Reading = Task.Run(async () =>
        {
            if (hold is not null) await hold(e.Name).ConfigureAwait(false);
            Interlocked.Increment(ref _diskReads);
            var (_, weights) = PeftAdapterFiles.ReadToHost(dir, shapes);
            if (e.Removed) // unregistered while it was read
            {
                weights.Dispose();
                throw new OperationCanceledException($"adapter '{e.Name}' was unloaded while it was read");
            }
            return weights;
        });
        e.Reading.ContinueWith(_ => ReadFinished?.Invoke(), TaskScheduler.Default);
    }

    private sealed class Entry(string name, string? dir, bool pinned)
    {
        public string Name { get; } = name;
        /// <summary>The PEFT folder it is read from; null for an adapter that came with the model.</summary>
        public string? Dir { get; } = dir;
        public bool Pinned { get; } = pinned;
        /// <summary>Its stack index while resident; 0 when not on the device.</summary>
        public int Index { get; set; }
        /// <summary>Its weights in host memory, or null.</summary>
        public HostLoraAdapter? Host { get; set; }
        public Task<HostLoraAdapter>? Reading { get; set; }
        /// <summary>Admitted rows holding it (running or being prefilled); it leaves the device only at 0.</summary>
        public int Active { get; set; }
        public long LastUse { get; set; }
        public volatile bool Removed;
    }
}
