using FinQLoRA.Adapters;
using FinQLoRA.Models;
using FinQLoRA.Serving.Residency;

namespace FinQLoRA.Serving.Pipeline;

/// <summary>
/// The adapters of a pipeline stage after the first, on its layers only: a mirror of rank 0's
/// <see cref="AdapterResidency"/>. Rank 0 decides which adapter sits at which of the <c>--max-loras</c> stack indices;
/// each decision arrives here as a place or vacate step, and this stage writes its layers of that adapter into the
/// same index of its own <see cref="AdapterStacks"/> (read from the adapter's folder, this stage's tensors only). It
/// keeps no host copies of folder adapters (reading its share of a folder again is what coming back costs here); an
/// adapter that came with the stage's model has no folder, so it is copied to host memory when it leaves.
/// An adapter whose tensors all lie on other stages' layers still takes its index, with zero weights: its rows run the
/// base on these layers. Stage worker thread only.
/// </summary>
internal sealed class StageAdapters : IDisposable
{
    private readonly DecoderModel _model;
    private readonly LoraTargetShapes _shapes;
    private readonly AdapterStacks _stacks;
    private readonly Dictionary<string, HostLoraAdapter> _host = new(StringComparer.Ordinal); // adapters without a folder, off the device
    private readonly HashSet<string> _fromFolder = new(StringComparer.Ordinal); // adapters rank 0 placed with a folder

    /// <summary>Serves the adapters already in <paramref name="stageModel"/> as rank 0's residency does those of its
    /// model: the first <paramref name="maxLoras"/> at indices 1.., the rest moved to host memory.</summary>
    public StageAdapters(DecoderModel stageModel, int maxLoras)
    {
        _model = stageModel;
        _shapes = LoraTargetShapes.Of(stageModel);
        _stacks = new AdapterStacks(stageModel, maxLoras);
        var names = LoraInjector.AdapterNames(stageModel);
        for (int i = 0; i < names.Count; i++)
        {
            if (i < maxLoras) _stacks.Place(names[i], i + 1);
            else
            {
                _host[names[i]] = HostLoraAdapter.FromModel(stageModel, names[i]);
                RemoveFromModel(names[i]);
            }
        }
    }

    /// <summary>Puts this stage's layers of <paramref name="name"/> at <paramref name="index"/>, from
    /// <paramref name="dir"/> (rank 0 checked the folder before registering it) or, without a folder, from host memory.</summary>
    public void Place(string name, string? dir, int index)
    {
        if (dir is not null)
        {
            var (_, weights) = PeftAdapterFiles.ReadToHost(dir, _shapes);
            using (weights) weights.Install(_model, name);
            _fromFolder.Add(name);
        }
        else if (_host.Remove(name, out var copy))
        {
            using (copy) copy.Install(_model, name);
        }
        else throw new InvalidOperationException($"rank 0 placed adapter '{name}' without a folder, and this stage holds no copy of it");
        _stacks.Place(name, index);
    }

    /// <summary>Takes <paramref name="name"/> off the device; wrapped projections stay wrapped, so the stacks keep their shape.</summary>
    public void Vacate(string name)
    {
        if (!_fromFolder.Contains(name) && !_host.ContainsKey(name))
            _host[name] = HostLoraAdapter.FromModel(_model, name);
        RemoveFromModel(name);
        _stacks.Vacate(name);
    }

    /// <summary>Forgets an unregistered adapter (rank 0 vacated it first if it was on the device).</summary>
    public void Remove(string name)
    {
        if (_host.Remove(name, out var copy)) copy.Dispose();
        _fromFolder.Remove(name);
    }

    /// <summary>Sets each row's adapter (null: the base) for the next forward.</summary>
    public void Select(IEnumerable<string?> rowAdapters) => _stacks.Select(rowAdapters);

    public void ClearSelection() => _stacks.ClearSelection();

    public void Dispose()
    {
        _stacks.Dispose();
        foreach (var copy in _host.Values) copy.Dispose();
        _host.Clear();
    }

    private void RemoveFromModel(string name)
    {
        foreach (var w in LoraInjector.Wrapped(_model))
            if (w.Lora.Adapters.ContainsKey(name)) w.Lora.RemoveAdapter(name);
    }
}
