using FinQLoRA.Adapters;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Serving.Residency;

/// <summary>
/// The device side of residency: <c>--max-loras</c> stack indices (1..N; 0 is the base) and, for every LoRA-wrapped
/// projection, the <see cref="StackedLora"/> that holds the adapter of each index, so that one forward applies a
/// different adapter per row. An adapter that comes onto the device is written into its index in place; the stacks
/// are rebuilt only when it does not fit them (a higher rank, the first DoRA adapter, a projection newly wrapped).
/// Scheduler thread only, between two steps: a forward reads the stacks.
/// </summary>
internal sealed class AdapterStacks : IDisposable
{
    private readonly DecoderModel _model;
    private readonly string?[] _order; // stack index → adapter; [0] is the base, always null
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);
    private readonly LoraRowSelection _selection = new();
    private readonly List<StackedLora> _stacks = [];

    public AdapterStacks(DecoderModel model, int maxLoras)
    {
        _model = model;
        _order = new string?[maxLoras + 1];
    }

    /// <summary>Stack indices for adapters (the device's adapter slots).</summary>
    public int Capacity => _order.Length - 1;
    /// <summary>Full rebuilds so far (a bench and the tests read it: most arrivals should be in-place writes).</summary>
    public int Rebuilds { get; private set; }

    /// <summary>A stack index no adapter holds, or 0 when all are taken.</summary>
    public int FreeIndex() => Array.FindIndex(_order, 1, n => n is null) is var i and > 0 ? i : 0;

    /// <summary>Puts adapter <paramref name="name"/>, already in the model, at <paramref name="index"/>.</summary>
    public void Place(string name, int index)
    {
        if (_order[index] is not null) throw new InvalidOperationException($"stack index {index} holds '{_order[index]}'");
        _order[index] = name;
        _index[name] = index;
        foreach (var w in LoraInjector.Wrapped(_model))
        {
            var adapter = w.Lora.Adapters.GetValueOrDefault(name);
            if (w.Lora.Stacked is not { } stacked || !_stacks.Contains(stacked) || !stacked.TryWrite(w.Lora, index, adapter))
            {
                Rebuild();
                return;
            }
        }
    }

    /// <summary>Frees the index of <paramref name="name"/>; no row may select it any more (its weights stay until overwritten).</summary>
    public void Vacate(string name)
    {
        if (_index.Remove(name, out int i)) _order[i] = null;
    }

    /// <summary>Restacks every projection from the model's adapters at their indices.</summary>
    public void Rebuild()
    {
        foreach (var s in _stacks) s.Dispose();
        _stacks.Clear();
        foreach (var w in LoraInjector.Wrapped(_model))
        {
            var stacked = StackedLora.Build(w.Lora, _order, _selection);
            w.Lora.Stacked = stacked;
            _stacks.Add(stacked);
        }
        Rebuilds++;
    }

    /// <summary>Sets each row's adapter (null: the base; every named one is placed) for the next forward;
    /// <see cref="ClearSelection"/> afterwards leaves the model as it was for anyone else (a stale selection would
    /// apply to a batch of another size).</summary>
    public void Select(IEnumerable<string?> rowAdapters)
    {
        var index = rowAdapters.Select(a => a is { } name ? (long)_index[name] : 0L).ToArray();
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
        _stacks.Clear();
        foreach (var w in LoraInjector.Wrapped(_model)) w.Lora.Stacked = null;
    }
}
