using static TorchSharp.torch;

namespace FinQLoRA.Privacy.PerUnitGradients;

/// <summary>
/// Joins a step's micro-batches: a unit whose examples are split over several micro-batches (a customer's records, or
/// an example shard) is summed across them, and handed on (<c>onComplete</c>) as soon as the last micro-batch holding it
/// is done, so only units still awaiting examples are kept between micro-batches.
/// </summary>
internal sealed class UnitGradientAccumulator : IDisposable
{
    private readonly Dictionary<int, int> _lastMicroBatch = [];
    private readonly Dictionary<int, Tensor[]> _pending = [];
    private readonly Action<int[], Tensor[]> _onComplete;

    /// <param name="unitsPerMicroBatch">the units of each micro-batch of the step, in order</param>
    /// <param name="onComplete">told each finished group of units with their gradients [k, …] (valid during the call)</param>
    public UnitGradientAccumulator(IReadOnlyList<IEnumerable<int>> unitsPerMicroBatch, Action<int[], Tensor[]> onComplete)
    {
        for (int m = 0; m < unitsPerMicroBatch.Count; m++)
            foreach (int unit in unitsPerMicroBatch[m]) _lastMicroBatch[unit] = m;
        _onComplete = onComplete;
    }

    /// <summary>Units still waiting for a later micro-batch.</summary>
    public int Pending => _pending.Count;

    public void Add(int microBatch, MicroBatchUnitGradients gradients)
    {
        using var scope = NewDisposeScope();
        var rows = gradients.Units;
        var grads = gradients.Gradients;
        for (int k = 0; k < rows.Length; k++)
        {
            if (!_pending.Remove(rows[k], out var earlier)) continue;
            for (int p = 0; p < grads.Length; p++) grads[p][k].add_(earlier[p]);
            foreach (var e in earlier) e.Dispose();
        }
        var done = new List<long>();
        for (int k = 0; k < rows.Length; k++)
        {
            if (!_lastMicroBatch.TryGetValue(rows[k], out int last))
                throw new InvalidOperationException($"unit {rows[k]} is in micro-batch {microBatch} but not in the step's list of units");
            if (last == microBatch) { done.Add(k); continue; }
            _pending[rows[k]] = [.. grads.Select(g =>
            {
                var kept = g[k].clone();
                kept.DetachFromDisposeScope();
                return kept;
            })];
        }
        if (done.Count == 0) return;
        var index = tensor(done.ToArray(), device: grads[0].device);
        _onComplete([.. done.Select(k => rows[(int)k])], [.. grads.Select(g => g.index_select(0, index))]);
    }

    public void Dispose()
    {
        foreach (var e in _pending.Values.SelectMany(t => t)) e.Dispose();
        _pending.Clear();
    }
}
