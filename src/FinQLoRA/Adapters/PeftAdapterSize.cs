using System.Globalization;
using FinQLoRA.Models;

namespace FinQLoRA.Adapters;

/// <summary>
/// What a PEFT adapter for a model costs, before training it: per targeted projection r·(in + out) values
/// (+ out for DoRA's magnitude), in every layer. Example: Llama 3.1 8B, r = 4 on q, k, v →
/// 32 · 4 · ((4096+4096) + 2·(4096+1024)) = 2,359,296 values = 9.0 MiB as F32 (what PEFT saves by default, its adapter
/// weights being fp32) or 4.5 MiB as BF16 (what FinLoRA's published adapters hold, 4.5 MB in the paper).
/// </summary>
public static class PeftAdapterSize
{
    public static long ParameterCount(ModelConfig model, LoraConfig lora) =>
        ParameterCount(model, lora.Rank, lora.ResolvedTargets(model.Family), lora.UseDora);

    /// <summary>L · Σ over targets r·(in + out), + out per target for DoRA's magnitude.</summary>
    public static long ParameterCount(ModelConfig model, int rank, IEnumerable<ProjectionKind> targets, bool dora)
    {
        long perLayer = 0;
        foreach (var projection in targets)
        {
            var (inF, outF) = ModelLayout.Shape(model, projection);
            perLayer += (long)rank * (inF + outF) + (dora ? outF : 0);
        }
        return perLayer * model.NumLayers;
    }

    /// <summary>Bytes of tensor data in adapter_model.safetensors (the JSON header, a few KB, comes on top).</summary>
    public static long TensorBytes(ModelConfig model, LoraConfig lora, int bytesPerValue = 4) => ParameterCount(model, lora) * bytesPerValue;

    /// <summary>"2,359,296 params: 9.00 MiB as F32, 4.50 MiB as BF16".</summary>
    public static string Describe(ModelConfig model, LoraConfig lora)
    {
        long n = ParameterCount(model, lora);
        return string.Create(CultureInfo.InvariantCulture, $"{n:N0} params: {n * 4 / 1048576.0:F2} MiB as F32, {n * 2 / 1048576.0:F2} MiB as BF16");
    }
}
