namespace FinQLoRA.Serving;

/// <summary>
/// The requests waiting for a KV slot, in admission order: by <see cref="EngineRequest.Priority"/> (lower first; all 0
/// under first come, first served), ties by arrival. Any thread adds, the scheduler thread takes, and a request that
/// admission could not fit this step is put back where its priority and arrival place it, so it keeps its turn.
/// Bounded beyond the free slots (one more is refused: HTTP 429), and its depth is reported as it changes.
/// </summary>
internal sealed class WaitingQueue(int maxQueue, IEngineObserver? observer)
{
    private readonly LinkedList<EngineRow> _rows = new();
    private readonly object _lock = new();
    private long _arrivals; // guarded by _lock

    public int Count { get { lock (_lock) return _rows.Count; } }

    /// <summary>Adds <paramref name="row"/> in its place unless <c>maxQueue</c> requests already wait beyond the
    /// <paramref name="freeSlots"/> that the next step fills.</summary>
    public bool TryAdd(EngineRow row, int freeSlots)
    {
        lock (_lock)
        {
            if (_rows.Count - freeSlots >= maxQueue) return false;
            row.Arrival = ++_arrivals;
            Insert(row);
            observer?.QueueDepth(_rows.Count);
            return true;
        }
    }

    public bool TryTake(out EngineRow row)
    {
        lock (_lock)
        {
            if (_rows.First is { } first)
            {
                _rows.RemoveFirst();
                observer?.QueueDepth(_rows.Count);
                row = first.Value;
                return true;
            }
        }
        row = null!;
        return false;
    }

    /// <summary>Returns a row just taken: it goes back before every row that came after it with the same priority.</summary>
    public void PutBack(EngineRow row)
    {
        lock (_lock) Insert(row);
    }

    /// <summary>The adapters the waiting rows name (null: the base), for vLLM's <c>waiting_lora_adapters</c>.</summary>
    public void AddAdapters(HashSet<string> into)
    {
        lock (_lock)
            foreach (var r in _rows)
                if (r.Request.Adapter is { } name) into.Add(name);
    }

    /// <summary>Takes out the rows whose clients went away, in queue order.</summary>
    public List<EngineRow> RemoveCancelled()
    {
        lock (_lock)
        {
            var cancelled = _rows.Where(r => r.Request.Cancellation.IsCancellationRequested).ToList();
            foreach (var r in cancelled) _rows.Remove(r);
            return cancelled;
        }
    }

    /// <summary>Places <paramref name="row"/> after every row that goes before it. The walk starts at the tail, where a
    /// newcomer of the usual priority belongs, so first come, first served costs one comparison.</summary>
    private void Insert(EngineRow row)
    {
        var node = _rows.Last;
        while (node is not null && GoesBefore(row, node.Value)) node = node.Previous;
        if (node is null) _rows.AddFirst(row);
        else _rows.AddAfter(node, row);
    }

    private static bool GoesBefore(EngineRow a, EngineRow b) =>
        a.Request.Priority != b.Request.Priority ? a.Request.Priority < b.Request.Priority : a.Arrival < b.Arrival;
}
