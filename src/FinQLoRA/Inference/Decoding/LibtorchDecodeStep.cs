using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Inference.Decoding;

/// <summary>The decode step through the model's libtorch forward: every configuration, batch, dtype and device.</summary>
public sealed class LibtorchDecodeStep(LlamaModel model, KvCache cache) : IDecodeStep
{
    public Tensor Forward(Tensor ids, Tensor? positions = null, Tensor? mask = null) =>
        positions is null || mask is null
            ? model.Forward(ids, null, cache, lastOnly: true)
            : model.Forward(ids, positions, mask, cache, lastOnly: true);
}
