using FinQLoRA.Adapters;
using FinQLoRA.Models;
using FinQLoRA.Serving.Residency;

namespace FinQLoRA.Serving.Pipeline;

/// <summary>
/// The adapters of a pipeline stage after the first, on its layers only. Under <c>--pipeline-stages</c> rank 0 keeps
/// every registered adapter on the device (the engine refuses more than <c>--max-loras</c>), so a stage never evicts:
/// it holds each adapter rank 0 announced at a stack index of its own <see cref="AdapterStacks"/>. Rows name their
/// adapters, not indices, so the numbering need not match rank 0's. An adapter whose tensors all lie on other stages'
/// layers still takes an index here, with zero weights: its rows run the base on these layers.
/// Stage worker thread only.
/// </summary>
internal sealed class StageAdapters : IDisposable
{
    private readonly DecoderModel _model;
    private readonly AdapterStacks _stacks;
    private readonly HashSet<string> _held = new(StringComparer.Ordinal);

    /// <summary>Serves the adapters loaded into <paramref name="stageModel"/> at start (<see cref="PipelineServingStage.Load"/>).</summary>
    public StageAdapters(DecoderModel stageModel, int maxLoras)
    {
        _model = stageModel;
        _stacks = new AdapterStacks(stageModel, maxLoras);
        foreach (string name in LoraInjector.AdapterNames(stageModel)) Place(name);
    }

    /// <summary>Reads this stage's layers of the PEFT folder <paramref name="dir"/> as <paramref name="name"/> (rank 0
    /// checked the whole folder before announcing it).</summary>
    public void Load(string name, string dir)
    {
        if (_held.Contains(name)) throw new InvalidOperationException($"rank 0 loaded adapter '{name}' twice");
        var (_, weights) = PeftAdapterFiles.ReadToHost(dir, LoraTargetShapes.Of(_model));
        using (weights) weights.Install(_model, name);
        Place(name);
    }

    /// <summary>Takes <paramref name="name"/> off this stage; wrapped projections stay wrapped, so the stacks keep their shape.</summary>
    public void Delete(string name)
    {
        foreach (var w in LoraInjector.Wrapped(_model))
            if (w.Lora.Adapters.ContainsKey(name)) w.Lora.RemoveAdapter(name);
        _stacks.Vacate(name);
        _held.Remove(name);
    }

    /// <summary>Sets each row's adapter (null: the base) for the next forward.</summary>
    public void Select(IEnumerable<string?> rowAdapters) => _stacks.Select(rowAdapters);

    public void ClearSelection() => _stacks.ClearSelection();

    public void Dispose() => _stacks.Dispose();

    private void Place(string name)
    {
        int index = _stacks.FreeIndex();
        if (index == 0)
            throw new InvalidOperationException($"adapter '{name}' finds all {_stacks.Capacity} stack indices of this stage taken; rank 0 keeps at most --max-loras adapters under --pipeline-stages");
        _stacks.Place(name, index);
        _held.Add(name);
    }
}
