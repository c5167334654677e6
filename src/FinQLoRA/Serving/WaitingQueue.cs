namespace FinQLoRA.Serving;

/// <summary>
/// The requests waiting for a KV slot, first come first served: any thread adds, the scheduler thread takes, and a
/// request that admission could not fit this step is put back at the head, so it keeps its turn. Bounded beyond the
/// free slots (one more is refused: HTTP 429), and its depth is reported as it changes.
/// </summary>
internal sealed class WaitingQueue(int maxQueue, IEngineObserver? observer)
{
    private readonly LinkedList<EngineRow> _rows = new();
    private readonly object _lock = new();

    public int Count { get { lock (_lock) return _rows.Count; } }

    /// <summary>Adds <paramref name="row"/> at the end unless <c>maxQueue</c> requests already wait beyond the
    /// <paramref name="freeSlots"/> that the next step fills.</summary>
    public bool TryAdd(EngineRow row, int freeSlots)
    {
        lock (_lock)
        {
            if (_rows.Count - freeSlots >= maxQueue) return false;
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

    /// <summary>Returns a row just taken to the head of the queue.</summary>
    public void PutBack(EngineRow row)
    {
        lock (_lock) _rows.AddFirst(row);
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
}
