using FinQLoRA.Models;

namespace FinQLoRA.Inference.Decoding;

/// <summary>
/// The one place where a decode step is chosen, for every generation loop (batched and multi-adapter generation
/// here, and the serving engine's model runner): the managed single-token step where
/// <see cref="ManagedStepSupport"/> covers the model, the cache and the moment, else the libtorch step (always, for the
/// server's slot pool: its rows sit at their own lengths). The model's own forward never switches by itself.
/// </summary>
public static class DecodeStep
{
    /// <summary>The step for decoding into <paramref name="cache"/> with <paramref name="model"/> as it is now (call it
    /// under the grad mode the steps run in, after adapters are set).</summary>
    /// <param name="allowManaged">false forces the libtorch step (benchmarks compare both)</param>
    public static IDecodeStep Choose(DecoderModel model, IKvCache cache, bool allowManaged = true)
    {
        var libtorch = new LibtorchDecodeStep(model, cache);
        if (!allowManaged || ManagedStepSupport.Rejects(model, cache) is not null || cache is not KvCache whole) return libtorch;
        return SingleTokenDecoder.TryCreate(model) is { } decoder ? new ManagedDecodeStep(decoder, whole, libtorch) : libtorch;
    }
}
