using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Inference.Decoding;

/// <summary>The decode step through the model's libtorch forward: every configuration, batch, dtype and device. Over
/// a whole-model <see cref="KvCache"/> the step advances the cache; any other cache (the server's slot pool)
/// is placed by its owner before the step and needs the rows' positions and mask.</summary>
public sealed class LibtorchDecodeStep(DecoderModel model, IKvCache cache) : IDecodeStep
{
    public Tensor Forward(Tensor ids, Tensor? positions = null, Tensor? mask = null)
    {
        if (cache is KvCache whole)
            return positions is null || mask is null
                ? model.Forward(ids, null, whole, lastOnly: true)
                : model.Forward(ids, positions, mask, whole, lastOnly: true);
        if (positions is null || mask is null)
            throw new ArgumentException($"a decode step over a {cache.GetType().Name} needs each row's positions and mask");
        return model.ForwardWithoutAdvancing(ids, positions, mask, cache, lastOnly: true);
    }
}
