namespace FinQLoRA.Serving;

/// <summary>
/// The requests waiting for a KV slot, first come first served: any thread adds, the scheduler thread takes (the oldest
/// one, or the oldest one admission can take now: one whose adapter is on the device), and a request that admission
/// could not fit this step is put back in its place, so it keeps its turn. Bounded beyond the
/// free slots (one more is refused: HTTP 429), and its depth is reported as it changes.
/// </summary>
internal sealed class WaitingQueue(int maxQueue, IEngineObserver? observer)
{
    private readonly LinkedList<EngineRow> _rows = new();
    private readonly object _lock = new();
    private long _arrivals;

    public int Count { get { lock (_lock) return _rows.Count; } }

    /// <summary>Adds <paramref name="row"/> at the end unless <c>maxQueue</c> requests already wait beyond the
    /// <paramref name="freeSlots"/> that the next step fills.</summary>
    public bool TryAdd(EngineRow row, int freeSlots)
    {
        lock (_lock)
        {
            if (_rows.Count - freeSlots >= maxQueue) return false;
            row.Sequence = ++_arrivals;
            _rows.AddLast(row);
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

    /// <summary>Takes the oldest row that <paramref name="eligible"/> accepts (called in queue order, under the queue's
    /// lock: keep it quick and let it not touch the queue).</summary>
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

    /// <summary>Returns a row just taken to its place (by arrival) in the queue.</summary>
    public void PutBack(EngineRow row)
    {
        lock (_lock)
        {
            var after = _rows.First;
            while (after is not null && after.Value.Sequence < row.Sequence) after = after.Next;
            if (after is null) _rows.AddLast(row);
            else _rows.AddBefore(after, row);
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
}
