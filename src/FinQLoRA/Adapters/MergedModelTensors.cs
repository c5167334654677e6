using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// The model's weights under their Hugging Face names (<c>model.embed_tokens.weight</c>,
/// <c>model.layers.{i}.self_attn.q_proj.weight</c>, …, <c>model.norm.weight</c>, <c>lm_head.weight</c>), with the
/// active adapter folded into every wrapped projection and quantized projections dequantized. The model itself is
/// not changed, so this also serves to export a merged copy while training goes on.
/// </summary>
public static class MergedModelTensors
{
    /// <summary>Yields new tensor handles in <paramref name="dtype"/>; the caller disposes each one.</summary>
    public static IEnumerable<KeyValuePair<string, Tensor>> Enumerate(LlamaModel model, ScalarType dtype)
    {
        if (model.EmbedTokens.shape[0] == 0)
            throw new InvalidOperationException("this model was loaded without its embeddings (a pipeline stage); only a whole model can be exported");
        yield return new("model.embed_tokens.weight", Cast(model.EmbedTokens, dtype));
        for (int i = 0; i < model.Layers.Count; i++)
        {
            var layer = model.Layers[i];
            string p = $"model.layers.{i}.";
            yield return new(p + "input_layernorm.weight", Cast(layer.InputNorm.Weight, dtype));
            foreach (string projection in LoraTargets.All)
                yield return new(LoraTargets.ModulePath(i, projection) + ".weight", ProjectionWeight(LoraInjector.Owner(layer, projection)[projection], dtype));
            yield return new(p + "post_attention_layernorm.weight", Cast(layer.PostAttentionNorm.Weight, dtype));
        }
        yield return new("model.norm.weight", Cast(model.FinalNorm.Weight, dtype));
        if (model.LmHead is { } head) yield return new("lm_head.weight", ProjectionWeight(head, dtype));
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
