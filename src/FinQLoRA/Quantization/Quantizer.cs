using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization;

/// <summary>Quantizes full-precision weights into bitsandbytes-compatible <see cref="QuantizedTensor"/>s.</summary>
public static class Quantizer
{
    /// <summary>
    /// Quantizes <paramref name="weight"/> (any float dtype, any device; the result lives on the same device).
    /// 4 bits: blockwise NF4/FP4 (optionally double-quantized) of the row-major flattened weight.
    /// 8 bits: LLM.int8() row-wise, from the weight's float16 values as bitsandbytes' <c>Int8Params</c> does.
    /// 16 bits is "keep the weight": there is nothing to quantize, so it is rejected here.
    /// </summary>
    public static QuantizedTensor Quantize(Tensor weight, QuantizationOptions options)
    {
        options.Validate();
        if (!weight.is_floating_point())
            throw new UserInputException($"quantize: weight of dtype {weight.dtype} is not a floating-point tensor");
        return options.Bits switch
        {
            4 => Quantize4Bit(weight, options.Kind, options.BlockSize, options.DoubleQuant),
            8 => QuantizeInt8(weight),
            _ => throw UserInputException.About($"quantize: 16-bit means no quantization; keep the bf16 weight (use {new ConfigField("bits")} 4 or 8 to quantize)"),
        };
    }

    public static unsafe Blockwise4BitTensor Quantize4Bit(Tensor weight, FourBitType type, int blockSize = 64, bool doubleQuant = true)
    {
        new QuantizationOptions(4, type, doubleQuant, blockSize).Validate();
        using var scope = NewDisposeScope();
        Device device = weight.device;
        Tensor w = weight.detach().to(CPU).to(ScalarType.Float32).contiguous();
        long n = w.numel();
        long blocks = (n + blockSize - 1) / blockSize;
        Tensor packed = empty([(n + 1) / 2, 1], ScalarType.Byte);
        Tensor absmax = empty([blocks], ScalarType.Float32);
        float* absmaxPtr = (float*)TensorMemory.DataPointer(absmax);
        Blockwise4BitCodec.Quantize((float*)TensorMemory.DataPointer(w), n, blockSize, type,
            (byte*)TensorMemory.DataPointer(packed), absmaxPtr);

        Blockwise4BitTensor.NestedScales? nested = null;
        if (doubleQuant)
        {
            long nestedBlocks = (blocks + QuantizationOptions.NestedBlockSize - 1) / QuantizationOptions.NestedBlockSize;
            Tensor codes = empty([blocks], ScalarType.Byte);
            Tensor absmax2 = empty([nestedBlocks], ScalarType.Float32);
            float[] dyn = DynamicMap.Values.ToArray();
            float offset = Blockwise4BitCodec.DoubleQuantize(absmaxPtr, blocks, dyn,
                (byte*)TensorMemory.DataPointer(codes), (float*)TensorMemory.DataPointer(absmax2));
            nested = new Blockwise4BitTensor.NestedScales(codes.to(device), absmax2.to(device), offset, dyn);
        }
        return new Blockwise4BitTensor(weight.shape, weight.dtype, type, blockSize, packed.to(device),
            nested is null ? absmax.to(device) : null, FourBitCodebook.Values(type), nested);
    }

    /// <summary>
    /// LLM.int8() weight quantization (<c>int8_vectorwise_quant</c> without threshold): SCB = max|W[r,:]| and
    /// CB = round-half-even(W · (127/SCB)), with W first cast to float16 as bitsandbytes does. An all-zero row gets SCB 0 and CB 0.
    /// </summary>
    public static Int8RowwiseTensor QuantizeInt8(Tensor weight)
    {
        if (weight.dim() != 2)
            throw new UserInputException($"quantize int8: weight shape [{string.Join(", ", weight.shape)}] must be 2-D [out, in]");
        using var scope = NewDisposeScope();
        Tensor w = weight.detach().to(ScalarType.Float16).to(ScalarType.Float32);
        Tensor scb = w.abs().amax([1]);
        Tensor scale = full_like(scb, 127.0f).div(scb); // 127/SCB in fp32, like torch's `127.0 / row_stats`
        Tensor cb = (w * scale.unsqueeze(1)).round().nan_to_num(0.0).to(ScalarType.Int8);
        return new Int8RowwiseTensor(weight.shape, weight.dtype, cb, scb);
    }
}
