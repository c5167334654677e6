using FinQLoRA.Adapters;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Serving;

/// <summary>
/// The adapters a served model answers under (vLLM's <c>models/serving.py</c> registry): which names requests may use,
/// how many requests hold each one (so that an unload waits for them), and the <see cref="StackedLora"/> of every
/// projection that lets one forward apply a different adapter per row. The name table is read by any thread under a
/// lock; the model and the stacks are changed only on the scheduler thread (<see cref="Load"/>, <see cref="Delete"/>),
/// between two steps, because a forward reads them.
/// </summary>
internal sealed class AdapterRegistry : IDisposable
{
    private readonly DecoderModel _model;
    private readonly Dictionary<string, AdapterEntry> _adapters = new(StringComparer.Ordinal);
    private readonly LoraRowSelection _selection = new();
    private readonly List<StackedLora> _stacks = [];
    private Dictionary<string, long> _stackIndex = new(StringComparer.Ordinal);
    private readonly object _lock = new();
    private long _loads; // load serials: every load gets a new one, so a name loaded again is another adapter

    /// <summary>Serves the adapters already loaded into <paramref name="model"/> under their names.</summary>
    public AdapterRegistry(DecoderModel model)
    {
        _model = model;
        foreach (string name in LoraInjector.AdapterNames(model)) _adapters[name] = new AdapterEntry(name, ++_loads);
        RebuildStacks();
    }

    /// <summary>Adapters requests may name now (not those being unloaded), in load order.</summary>
    public IReadOnlyList<string> Names
    {
        get { lock (_lock) return _adapters.Values.Where(a => !a.Unloading).Select(a => a.Name).ToList(); }
    }

    public bool Has(string name)
    {
        lock (_lock) return _adapters.TryGetValue(name, out var a) && !a.Unloading;
    }

    /// <summary>Counts one more request on <paramref name="name"/>; an unknown or unloading name is refused.</summary>
    public void Acquire(string name)
    {
        lock (_lock)
        {
            if (!_adapters.TryGetValue(name, out var entry) || entry.Unloading) throw ServingException.UnknownModel(name);
            entry.InFlight++;
        }
    }

    /// <summary>A request on <paramref name="name"/> (null: the base) has ended; the last one lets a waiting unload go on.</summary>
    public void Release(string? name)
    {
        lock (_lock)
        {
            if (name is null || !_adapters.TryGetValue(name, out var entry)) return;
            entry.InFlight--;
            if (entry.Unloading && entry.InFlight == 0) entry.Drained.TrySetResult();
        }
    }

    /// <summary>The load serial of <paramref name="name"/> (0: the base): unloading an adapter and loading another under
    /// the same name gives a new serial, which is part of every prefix-cache key, so its rows never reuse the old one's
    /// keys and values. The row asking holds the adapter, so it is loaded.</summary>
    public long SerialOf(string? name)
    {
        if (name is null) return 0;
        lock (_lock) return _adapters[name].Serial;
    }

    /// <summary>Refuses a name already taken (checked on the caller's thread first, so the error comes at once).</summary>
    public void EnsureFree(string name)
    {
        lock (_lock)
            if (_adapters.ContainsKey(name))
                throw new ServingException(ServingErrorKind.InvalidRequest, $"an adapter named '{name}' is already loaded", "lora_name");
    }

    /// <summary>Loads a PEFT adapter folder as <paramref name="name"/> (scheduler thread only). The folder is checked
    /// completely before the model is touched; the name becomes visible only once it can serve.</summary>
    public void Load(string name, string dir)
    {
        EnsureFree(name);
        try { PeftAdapterFiles.Load(dir, _model, name); }
        catch when (LoraInjector.AdapterNames(_model).Contains(name))
        {
            // Checked files fail only while being read (I/O); take out what was added so the name stays free.
            LoraInjector.DeleteAdapter(_model, name);
            RebuildStacks();
            throw;
        }
        RebuildStacks();
        lock (_lock) _adapters[name] = new AdapterEntry(name, ++_loads);
    }

    /// <summary>Hides <paramref name="name"/> from new requests at once; the task ends when its in-flight requests have.</summary>
    public Task HideAndDrainAsync(string name)
    {
        lock (_lock)
        {
            if (!_adapters.TryGetValue(name, out var entry) || entry.Unloading) throw ServingException.UnknownModel(name, "lora_name");
            entry.Unloading = true;
            if (entry.InFlight == 0) entry.Drained.TrySetResult();
            return entry.Drained.Task;
        }
    }

    /// <summary>Frees a drained adapter's weights (scheduler thread only).</summary>
    public void Delete(string name)
    {
        LoraInjector.DeleteAdapter(_model, name);
        lock (_lock) _adapters.Remove(name);
        RebuildStacks();
    }

    /// <summary>Sets each row's adapter (null: the base) for the next forward; <see cref="ClearSelection"/> afterwards
    /// leaves the model as it was for anyone else (a stale selection would apply to a batch of another size).</summary>
    public void Select(IEnumerable<string?> rowAdapters)
    {
        // a pipeline stage whose layers an adapter does not touch holds no stack for it: its rows run the base there
        var index = rowAdapters.Select(a => a is { } name && _stackIndex.TryGetValue(name, out long i) ? i : 0L).ToArray();
        var t = tensor(index, device: _model.Device);
        t.DetachFromDisposeScope();
        _selection.Rows = t;
        _selection.BaseOnly = index.All(i => i == 0);
    }

    public void ClearSelection()
    {
        _selection.Rows?.Dispose();
        _selection.Rows = null;
        _selection.BaseOnly = false;
    }

    /// <summary>Frees the stacks and gives the projections back their plain adapters.</summary>
    public void Dispose()
    {
        foreach (var s in _stacks) s.Dispose();
        foreach (var w in LoraInjector.Wrapped(_model)) w.Lora.Stacked = null;
    }

    /// <summary>Restacks every projection's adapters after a load or unload: stack index 0 is the base, then the
    /// adapters in load order.</summary>
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

    private sealed class AdapterEntry(string name, long serial)
    {
        public string Name { get; } = name;
        public long Serial { get; } = serial;
        public int InFlight { get; set; }
        public bool Unloading { get; set; }
        public TaskCompletionSource Drained { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
