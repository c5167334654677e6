using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization;

namespace FinQLoRA.Training;

/// <summary>The frozen base of a fine-tune: checked against the adapter the config asks for from its config alone,
/// then loaded (quantized tensor by tensor as it loads) with the run's precision.</summary>
public static class TrainableModel
{
    /// <summary>LoRA's A is [r, in] and B is [out, r]: a rank above a projection's smaller side adds parameters
    /// without adding capacity (and makes huge adapters by mistake). Reads the checkpoint's config, not its weights.</summary>
    public static void CheckAdapterFits(TrainConfig c)
    {
        var (config, reader) = ModelLoading.Open(c.Model);
        reader.Dispose();
        CheckRankFits(config, c);
    }

    public static DecoderModel LoadBase(TrainConfig c)
    {
        var options = new ModelLoadOptions { DType = c.Dtype, Device = c.Device.ToTorch() }.WithBits(c.Bits, c.Quant, c.DoubleQuant);
        var model = ModelLoading.LoadModel(c.Model, options);
        model.GradientCheckpointing = c.GradCheckpointing;
        return model;
    }

    private static void CheckRankFits(ModelConfig model, TrainConfig c)
    {
        long smallest = c.Targets.Min(t => Math.Min(ModelLayout.Shape(model, t).In, ModelLayout.Shape(model, t).Out));
        if (c.Rank > smallest)
            throw new UserInputException($"rank = {c.Rank} is larger than the smallest side ({smallest}) of the targeted projections of this model; choose rank <= {smallest}");
    }
}
