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
        foreach (var t in ModelLayout.Tensors(model.Config))
        {
            var layer = t.Layer >= 0 ? model.Layers[t.Layer] : null;
            yield return new(t.HfName, t.Role switch
            {
                TensorRole.Embeddings => Cast(model.EmbedTokens, dtype),
                TensorRole.Norm => Cast(layer!.Norm(t.Norm!.Role)!.Weight, dtype),
                TensorRole.Projection => ProjectionWeight(layer![t.Projection!.Value], dtype),
                TensorRole.Bias => Cast(layer!.Section(t.Projection!.Value).Bias(t.Projection.Value)!, dtype),
                TensorRole.FinalNorm => Cast(model.FinalNorm.Weight, dtype),
                _ => ProjectionWeight(model.LmHead!, dtype),
            });
        }
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
