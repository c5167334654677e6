using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Inference.Decoding;

/// <summary>
/// The one place where a decode step is chosen, for every generation loop (batched and multi-adapter generation
/// here, and the serving engine's model runner): the managed single-token step where
/// <see cref="ManagedStepSupport"/> covers the model, the cache and the moment, else the libtorch step. Over the
/// server's slot pool the managed step runs the steps where one row runs (its first slot is a batch-1 whole-model
/// cache: <see cref="IFirstRowAsWholeCache"/>); steps of several rows at their own lengths take the libtorch step. The
/// model's own forward never switches by itself.
/// </summary>
public static class DecodeStep
{
    /// <summary>The step for decoding into <paramref name="cache"/> with <paramref name="model"/> as it is now (call it
    /// under the grad mode the steps run in, after adapters are set).</summary>
    /// <param name="allowManaged">false forces the libtorch step (benchmarks compare both)</param>
    public static IDecodeStep Choose(DecoderModel model, IKvCache cache, bool allowManaged = true)
    {
        var libtorch = new LibtorchDecodeStep(model, cache);
        if (!allowManaged || ManagedStepSupport.Rejects(model, cache) is not null) return libtorch;
        Func<Tensor?, KvCache>? cacheFor = cache switch
        {
            KvCache whole => _ => whole,
            // the row's position is its length, the number of positions its slot holds
            IFirstRowAsWholeCache rows => positions => rows.FirstRow(positions is null
                ? throw new ArgumentException("a decode step over a slot pool needs the row's position")
                : (int)positions.item<long>()),
            _ => null,
        };
        return cacheFor is not null && SingleTokenDecoder.TryCreate(model) is { } decoder ? new ManagedDecodeStep(decoder, cacheFor, libtorch) : libtorch;
    }
}
