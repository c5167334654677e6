namespace FinQLoRA.Serving;

/// <summary>
/// The requests waiting for a KV slot, in admission order: by <see cref="EngineRequest.Priority"/> (lower first; all 0
/// under first come, first served), ties by arrival. Any thread adds, the scheduler thread takes (the first one, or the
/// first one admission can take now: one whose adapter is on the device), and a request that admission could not fit
/// this step is put back where its priority and arrival place it, so it keeps its turn.
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

    public bool TryTake(out EngineRow row) => TryTake(_ => true, out row);

    /// <summary>Takes the first row (in admission order) that <paramref name="eligible"/> accepts (called in queue order,
    /// under the queue's lock: keep it quick and let it not touch the queue).</summary>
    public bool TryTake(Func<EngineRow, bool> eligible, out EngineRow row)
    {
        lock (_lock)
        {
            for (var node = _rows.First; node is not null; node = node.Next)
            {
                if (!eligible(node.Value)) continue;
                _rows.Remove(node);
                observer?.QueueDepth(_rows.Count);
                row = node.Value;
                return true;
            }
        }
        row = null!;
        return false;
    }

    /// <summary>Returns a row just taken: it goes back before every row that came after it with the same priority.</summary>
    public void PutBack(EngineRow row)
    {
        lock (_lock)
        {
            Insert(row);
            observer?.QueueDepth(_rows.Count);
        }
    }

    /// <summary>The adapters the waiting rows name (base rows left out), in queue order, repeats kept.</summary>
    public List<string> Adapters()
    {
        lock (_lock) return _rows.Select(r => r.Request.Adapter).OfType<string>().ToList();
    }

    /// <summary>Takes out the rows <paramref name="match"/> accepts, in queue order.</summary>
    public List<EngineRow> RemoveWhere(Func<EngineRow, bool> match)
    {
        lock (_lock)
        {
            var taken = _rows.Where(match).ToList();
            foreach (var r in taken) _rows.Remove(r);
            if (taken.Count > 0) observer?.QueueDepth(_rows.Count);
            return taken;
        }
    }

    /// <summary>Takes out the rows whose clients went away, in queue order.</summary>
    public List<EngineRow> RemoveCancelled() => RemoveWhere(r => r.Request.Cancellation.IsCancellationRequested);

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
