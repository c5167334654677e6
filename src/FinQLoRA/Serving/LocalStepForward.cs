using FinQLoRA.Inference.Decoding;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Serving;

/// <summary>A serving step's layers in one process: the whole model over the slot pool.</summary>
/// <param name="allowManaged">false runs every decode step through libtorch (benchmarks and tests compare both)</param>
internal sealed class LocalStepForward(DecoderModel model, SlotKvCache cache, bool allowManaged = true) : IStepForward
{
    // The pool and the model stay the same for the engine's life, so the step is chosen once (at the first decode,
    // under no_grad as every decode runs), not per token.
    private IDecodeStep? _decodeStep;

    /// <summary>How many decode steps ran in managed code (one row running, in the managed step's set).</summary>
    public long ManagedSteps => (_decodeStep as ManagedDecodeStep)?.Steps ?? 0;

    public Tensor Prefill(IReadOnlyList<string?> adapters, Tensor ids, Tensor positions, Tensor mask, CacheWrite write)
    {
        write.Begin(cache, 0, (int)ids.shape[0]);
        return model.RunLayers(model.Embed(ids), 0, model.Layers.Count, positions, mask, cache);
    }

    public Tensor Decode(IReadOnlyList<string?> adapters, Tensor feed, Tensor lengths, Tensor mask, CacheWrite.Decode write)
    {
        write.Begin(cache, 0, (int)feed.shape[0]);
        return (_decodeStep ??= DecodeStep.Choose(model, cache, allowManaged)).Forward(feed, lengths, mask);
    }

    public void Move(int from, int to, int length) => cache.Move(from, to, length);

    public void AdapterPlaced(string name, string? dir, int index) { }

    public void AdapterVacated(string name) { }

    public void AdapterRemoved(string name) { }

    public TimeSpan? IdleTick => null;

    public void Idle() { }

    public void Dispose() { }
}
