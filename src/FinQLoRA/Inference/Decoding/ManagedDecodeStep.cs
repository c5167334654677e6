using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Inference.Decoding;

/// <summary>
/// The decode step in managed code (<see cref="SingleTokenDecoder"/>), for what <see cref="ManagedStepSupport"/>
/// states. A step whose model changed after the choice (an adapter injected, weights replaced or moved), whose adapter
/// state left the set (a DoRA adapter activated, stacked per-row adapters set) or that runs with gradients on goes to the
/// libtorch step instead, so the result is always the model's. Activating, switching or switching off a plain LoRA
/// adapter keeps the managed step: it reads the state before every step.
/// </summary>
public sealed class ManagedDecodeStep : IDecodeStep
{
    private readonly SingleTokenDecoder _decoder;
    private readonly Func<Tensor?, KvCache> _cacheFor;
    private readonly IDecodeStep _fallback;

    /// <param name="cacheFor">the whole-model batch-1 cache a step of one row writes, given the row's position (null
    /// for a whole-model <see cref="KvCache"/>, which knows its length)</param>
    internal ManagedDecodeStep(SingleTokenDecoder decoder, Func<Tensor?, KvCache> cacheFor, IDecodeStep fallback)
    {
        _decoder = decoder;
        _cacheFor = cacheFor;
        _fallback = fallback;
    }

    /// <summary>How many steps ran in managed code (tests check it ran).</summary>
    public long Steps { get; private set; }

    public Tensor Forward(Tensor ids, Tensor? positions = null, Tensor? mask = null)
    {
        if (ids.numel() != 1 || is_grad_enabled() || !_decoder.IsCurrent()) return _fallback.Forward(ids, positions, mask);
        Steps++;
        return _decoder.Step(ids.item<long>(), _cacheFor(positions));
    }
}
