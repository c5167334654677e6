using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Inference.Decoding;

/// <summary>Seeded models with LLM.int8 projections of a chosen outlier threshold. A seeded model's normalised
/// activations have unit RMS, so the default 6.0 almost never marks an outlier column; 2.0 marks a few per vector, so
/// the outlier decomposition runs in every product.</summary>
internal static class EightBitLoading
{
    public const double OutlierThreshold = 2.0;

    public static ModelLoadOptions WithInt8(this ModelLoadOptions options, double threshold) => options with
    {
        LinearFactory = (_, weight) => new QuantizedLinear(Quantizer.Quantize(weight, new QuantizationOptions(Bits: 8, Int8Threshold: threshold)), int8Threshold: threshold),
    };

    /// <summary>Whether layer 0's normalised input for <paramref name="prompt"/> has values at or above the threshold
    /// (then the products of every step see outlier columns too, as its inputs have the same spread).</summary>
    public static bool HasOutliers(DecoderModel model, long[] prompt, double threshold)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = model.EmbedTokens.index_select(0, tensor(prompt)).to(model.ComputeDType);
        return (model.Layers[0].InputNorm.forward(x).to(ScalarType.Float32).abs() >= threshold).any().item<bool>();
    }
}
