using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization;

namespace FinQLoRA.Training;

/// <summary>The frozen base of a fine-tune: loaded (quantized tensor by tensor as it loads) with the run's precision,
/// and checked against the adapter the config asks for.</summary>
public static class TrainableModel
{
    public static LlamaModel LoadBase(TrainConfig c)
    {
        var options = new ModelLoadOptions { DType = c.Dtype, Device = c.Device.ToTorch() }.WithBits(c.Bits, c.Quant, c.DoubleQuant);
        var model = ModelLoading.LoadModel(c.Model, options);
        try
        {
            model.GradientCheckpointing = c.GradCheckpointing;
            CheckRankFits(model.Config, c);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>LoRA's A is [r, in] and B is [out, r]: a rank above a projection's smaller side adds parameters
    /// without adding capacity (and makes huge adapters by mistake).</summary>
    private static void CheckRankFits(LlamaConfig model, TrainConfig c)
    {
        long smallest = c.Targets.Min(t => Math.Min(LlamaLayout.Shape(model, t).In, LlamaLayout.Shape(model, t).Out));
        if (c.Rank > smallest)
            throw new UserInputException($"rank = {c.Rank} is larger than the smallest side ({smallest}) of the targeted projections of this model; choose rank <= {smallest}");
    }
}
