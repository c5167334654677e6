using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Models.Families;
using FinQLoRA.Quantization;

namespace FinQLoRA.Training;

/// <summary>The frozen base of a fine-tune: checked against the adapter the config asks for from its config alone,
/// then loaded (quantized tensor by tensor as it loads) with the run's precision.</summary>
public static class TrainableModel
{
    /// <summary>LoRA's A is [r, in] and B is [out, r]: a rank above a projection's smaller side adds parameters
    /// without adding capacity (and makes huge adapters by mistake). Reads the checkpoint's config, not its weights,
    /// and checks the target names against its family. Returns the family (what the target names mean).</summary>
    public static ModelFamily CheckAdapterFits(TrainConfig c)
    {
        var (config, reader) = ModelLoading.Open(c.Model);
        reader.Dispose();
        CheckRankFits(config, c);
        return config.Family;
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
        // The model's family is known from here on: its projections decide what the target names select.
        var targets = LoraTargets.Resolve(c.Targets, model.Family, "targets");
        long smallest = targets.Min(t => Math.Min(ModelLayout.Shape(model, t).In, ModelLayout.Shape(model, t).Out));
        if (c.Rank > smallest)
            throw new UserInputException($"rank = {c.Rank} is larger than the smallest side ({smallest}) of the targeted projections of this model; choose rank <= {smallest}");
    }
}
