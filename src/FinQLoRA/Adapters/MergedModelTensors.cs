using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// The model's weights under their Hugging Face names (<see cref="ModelLayout"/>), with the
/// active adapter folded into every wrapped projection and quantized projections dequantized. The model itself is
/// not changed, so this also serves to export a merged copy while training goes on.
/// </summary>
public static class MergedModelTensors
{
    /// <summary>Yields new tensor handles in <paramref name="dtype"/>; the caller disposes each one.</summary>
    public static IEnumerable<KeyValuePair<string, Tensor>> Enumerate(DecoderModel model, ScalarType dtype)
    {
        if (model.EmbedTokens.shape[0] == 0)
            throw new InvalidOperationException("this model was loaded without its embeddings (a pipeline stage); only a whole model can be exported");
        yield return new(ModelLayout.EmbeddingsName, Cast(model.EmbedTokens, dtype));
        for (int i = 0; i < model.Layers.Count; i++)
        {
            var layer = model.Layers[i];
            yield return new(ModelLayout.InputNormName(i), Cast(layer.InputNorm.Weight, dtype));
            foreach (var projection in ModelLayout.Projections)
                yield return new(ModelLayout.WeightName(i, projection), ProjectionWeight(layer[projection], dtype));
            yield return new(ModelLayout.PostAttentionNormName(i), Cast(layer.PostAttentionNorm.Weight, dtype));
        }
        yield return new(ModelLayout.FinalNormName, Cast(model.FinalNorm.Weight, dtype));
        if (model.LmHead is { } head) yield return new(ModelLayout.HeadName, ProjectionWeight(head, dtype));
    }

    private static Tensor ProjectionWeight(nn.Module<Tensor, Tensor> module, ScalarType dtype) => module switch
    {
        LoraLinear { ActiveAdapter: { } active } lora => lora.MergedWeight(active, dtype),
        LoraLinear lora => Cast(lora.Frozen.DequantizedWeight(dtype), dtype),
        IFrozenLinear frozen => Cast(frozen.DequantizedWeight(dtype), dtype),
        _ => throw new InvalidOperationException($"cannot read the weight of a {module.GetType().Name} projection"),
    };

    private static Tensor Cast(Tensor t, ScalarType dtype) => t.dtype == dtype ? t.detach() : t.detach().to(dtype);
}
