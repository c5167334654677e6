using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// Folds an adapter into the base weights (PEFT's <c>merge_and_unload</c>): every wrapped projection becomes a plain
/// <see cref="DenseLinear"/> holding W' = W₀ + s·B·A (DoRA: (m/n)·(W₀ + s·B·A)), computed in fp32 and cast to the
/// target dtype. A quantized base is dequantized first, so the merged model is dense (re-quantizing it would add
/// rounding error, peft#2321).
/// </summary>
public static class LoraMerger
{
    /// <summary>
    /// Merges <paramref name="adapterName"/> (the active adapter when null) into every wrapped projection and removes
    /// all wrappers (other adapters are dropped). Projections the adapter does not touch get their base weight back
    /// as a dense layer. Returns how many projections carried the adapter.
    /// </summary>
    public static int MergeAndUnload(DecoderModel model, string? adapterName = null, ScalarType? dtype = null)
    {
        string name = adapterName ?? LoraInjector.ActiveAdapter(model)
            ?? throw new UserInputException("nothing to merge: the model has no active adapter; name the adapter to merge");
        var wrapped = LoraInjector.Wrapped(model).ToList();
        if (!wrapped.Any(w => w.Lora.Adapters.ContainsKey(name)))
            throw new UserInputException($"nothing to merge: no adapter named '{name}' is loaded; loaded adapters: {string.Join(", ", LoraInjector.AdapterNames(model))}");
        var target = dtype ?? model.ComputeDType;
        int merged = 0;
        foreach (var w in wrapped)
        {
            bool has = w.Lora.Adapters.ContainsKey(name);
            var weight = has ? w.Lora.MergedWeight(name, target) : w.Lora.Frozen.DequantizedWeight(target).detach().clone();
            w.Owner.Replace(w.Projection, new DenseLinear(weight));
            w.Lora.Dispose(); // frees the adapters and the (possibly quantized) base
            if (has) merged++;
        }
        return merged;
    }

    /// <summary>The merged weight of one projection, without changing the model.</summary>
    public static Tensor MergedWeight(LoraLinear lora, string adapterName, ScalarType dtype) => lora.MergedWeight(adapterName, dtype);
}
