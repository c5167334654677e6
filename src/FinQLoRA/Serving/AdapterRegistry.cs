namespace FinQLoRA.Serving;

/// <summary>
/// The adapters a served model answers under (vLLM's <c>models/serving.py</c> registry): which names requests may use
/// and how many requests hold each one, queued or running (so that an unload waits for them). Registered is not
/// resident: where each adapter's weights are is <see cref="Residency.AdapterResidency"/>'s. Any thread reads and
/// changes the table, under a lock.
/// </summary>
internal sealed class AdapterRegistry
{
    private readonly Dictionary<string, AdapterEntry> _adapters = new(StringComparer.Ordinal);
    private readonly List<string> _order = []; // registration order, which /v1/models lists
    private readonly object _lock = new();
    private long _registrations; // serials: every registration gets a new one, so a name registered again is another adapter

    /// <summary>Serves <paramref name="names"/> (adapters already in the model) under their names.</summary>
    public AdapterRegistry(IEnumerable<string> names)
    {
        foreach (string name in names) Register(name);
    }

    /// <summary>Adapters requests may name now (not those being unloaded), in registration order.</summary>
    public IReadOnlyList<string> Names
    {
        get { lock (_lock) return _order.Where(n => !_adapters[n].Unloading).ToList(); }
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

    /// <summary>The registration serial of <paramref name="name"/> (0: the base): unregistering an adapter and
    /// registering another under the same name gives a new serial, which is part of every prefix-cache key, so its rows
    /// never reuse the old one's keys and values. Leaving the device and coming back keeps the serial (same weights).
    /// The row asking holds the adapter, so it is registered.</summary>
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

    /// <summary>Makes <paramref name="name"/> visible to requests.</summary>
    public void Register(string name)
    {
        lock (_lock)
        {
            EnsureFree(name);
            _adapters[name] = new AdapterEntry(++_registrations);
            _order.Add(name);
        }
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

    /// <summary>Frees the name of a drained adapter.</summary>
    public void Remove(string name)
    {
        lock (_lock)
        {
            _adapters.Remove(name);
            _order.Remove(name);
        }
    }

    private sealed class AdapterEntry(long serial)
    {
        public long Serial { get; } = serial;
        public int InFlight { get; set; }
        public bool Unloading { get; set; }
        public TaskCompletionSource Drained { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
