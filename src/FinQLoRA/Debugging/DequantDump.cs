using System.Text.Json.Nodes;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Debugging;

/// <summary>
/// <c>finqlora debug dump-dequant</c>: every quantized weight of the model dequantized on the model's device
/// (<see cref="IFrozenLinear.DequantizedWeight"/>, the computation the forward uses) and written as fp32 under its
/// Hugging Face name (<c>model.layers.0.self_attn.q_proj.weight</c>). NF4, FP4 and LLM.int8 decode with exact fp32
/// products, so a dump made on cuda must equal the cpu one bit for bit.
/// </summary>
public static class DequantDump
{
    public const string Command = "dump-dequant";

    public static DebugDumpResult Run(DequantDumpOptions o)
    {
        DebugDump.Check(o.ModelPath, o.OutPath, o.Overwrite);
        using var model = ModelLoading.LoadModel(o.ModelPath, o.Load);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        var formats = new JsonObject();
        try
        {
            using (no_grad())
                foreach (var t in ModelLayout.Tensors(model.Config))
                {
                    var module = t.Role switch
                    {
                        TensorRole.Projection => model.Layers[t.Layer][t.Projection!.Value],
                        TensorRole.Head => model.LmHead,
                        _ => null,
                    };
                    if (module is not QuantizedLinear q) continue;
                    // to the CPU one at a time: the device holds one fp32 weight at most, beside the quantized model
                    using var weight = q.DequantizedWeight(ScalarType.Float32);
                    tensors.Add(new(t.HfName, weight.cpu()));
                    formats[t.HfName] = q.Weight.Format.ToString().ToLowerInvariant();
                }
            if (tensors.Count == 0)
                throw UserInputException.About($"{new ConfigField("model")} {o.ModelPath}: no weight is quantized; pass a pre-quantized folder (finqlora quantize) or {new ConfigField("bits")} 4 or 8");
            return DebugDump.Write(o.OutPath, Command, o.ModelPath, ComputeDevice.From(model.Device), tensors, new JsonObject { ["formats"] = formats });
        }
        finally
        {
            foreach (var (_, t) in tensors) t.Dispose();
        }
    }
}
