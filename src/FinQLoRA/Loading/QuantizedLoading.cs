using FinQLoRA.Models;
using FinQLoRA.Quantization;
using static TorchSharp.torch;

namespace FinQLoRA.Loading;

/// <summary>Builds the loader's per-projection factory for a base precision: 16-bit dense, or 4/8-bit quantized
/// tensor by tensor as the checkpoint is read (so peak memory stays near the quantized size).</summary>
public static class QuantizedLoading
{
    public static ModelLoadOptions WithBits(this ModelLoadOptions options, int bits, FourBitType kind = FourBitType.Nf4, bool doubleQuant = true)
    {
        if (bits == 16) return options;
        var q = new QuantizationOptions(Bits: bits, Kind: kind, DoubleQuant: doubleQuant).Validate();
        return options with
        {
            LinearFactory = (_, weight) =>
            {
                // keep the stored dtype: it is recorded as the quant_state "dtype" (bitsandbytes writes bfloat16 for bf16 checkpoints)
                using var onDevice = weight.to(options.Device);
                var layer = new QuantizedLinear(Quantizer.Quantize(onDevice, q), int8Threshold: q.Int8Threshold);
                HeapTrim.Run(); // the quantizer's fp32 copies are freed; hand their pages back before the next weight
                return layer;
            },
        };
    }
}
