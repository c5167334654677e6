using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization;

/// <summary>
/// y = x·Wᵀ for a frozen quantized W, as a custom autograd node that saves only the quantized weight (no dequantized
/// copy and no input) and dequantizes again in backward: grad_x = grad_y·W. Without it, autograd would keep every
/// layer's full-precision weight alive from forward to backward, which is the memory QLoRA exists to avoid.
/// <para>apply(x, QuantizedTensor weight, double int8Threshold): backward returns one entry per argument
/// (<see cref="ArgumentCount"/>), null for the two non-tensors — a wrong count aborts the process.</para>
/// </summary>
internal sealed class QuantizedMatmulFunction : autograd.SingleTensorFunction<QuantizedMatmulFunction>
{
    /// <summary>Arguments of <c>apply</c>: x, weight, int8 threshold.</summary>
    public const int ArgumentCount = 3;

    public override string Name => "QuantizedMatmul";

    public static Tensor Apply(Tensor x, QuantizedTensor weight, double int8Threshold) => apply(x, weight, int8Threshold);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var weight = (QuantizedTensor)vars[1];
        double threshold = (double)vars[2];
        ctx.save_data("weight", weight);
        ctx.save_data("dtype", x.dtype);
        return Forward(x, weight, threshold);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var weight = (QuantizedTensor)ctx.get_data("weight");
        var dtype = (ScalarType)ctx.get_data("dtype");
        Tensor gradInput;
        using (var scope = NewDisposeScope())
        {
            var g = grad_output.to(dtype);
            var wide = CpuMatmulPrecision.MatmulDType(g);
            using Tensor w = DequantizeTemporary(weight, dtype, wide);
            var product = g.to(wide).matmul(w);
            gradInput = (product.dtype == dtype ? product : product.to(dtype)).MoveToOuterDisposeScope();
        }
        var grads = new List<Tensor>(ArgumentCount) { gradInput, null!, null! };
        return grads;
    }

    /// <summary>The forward computation without autograd: dequantize into a temporary, matmul, free the temporary.</summary>
    public static Tensor Forward(Tensor x, QuantizedTensor weight, double int8Threshold)
    {
        using var scope = NewDisposeScope();
        if (weight is Int8RowwiseTensor int8)
            return LlmInt8.Linear(x, int8, int8Threshold).MoveToOuterDisposeScope();
        var wide = CpuMatmulPrecision.MatmulDType(x);
        using Tensor w = DequantizeTemporary(weight, x.dtype, wide);
        var y = nn.functional.linear(x.to(wide), w);
        return (y.dtype == x.dtype ? y : y.to(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>The weight dequantized in <paramref name="dtype"/> (bitsandbytes' values), held in <paramref name="wide"/>
    /// for a widened CPU matmul (<see cref="CpuMatmulPrecision"/>): the 16-bit values are exact in fp32, so only the
    /// summation order of the matmul changes.</summary>
    private static Tensor DequantizeTemporary(QuantizedTensor weight, ScalarType dtype, ScalarType wide)
    {
        if (wide == dtype) return DequantizeTemporary(weight, dtype);
        if (weight is Blockwise4BitTensor q && dtype == ScalarType.BFloat16 && weight.Device.type == DeviceType.CPU)
        {
            Tensor values = WeightWorkspace.Borrow(weight.Shape, wide);
            q.DequantizeBf16ValuesInto(values);
            return values;
        }
        using (Tensor w = DequantizeTemporary(weight, dtype))
        {
            Tensor widened = WeightWorkspace.Borrow(weight.Shape, wide);
            widened.copy_(w);
            return widened;
        }
    }

    /// <summary>The weight for one matmul: on the CPU a view of the thread's reusable workspace, elsewhere a new tensor.</summary>
    private static Tensor DequantizeTemporary(QuantizedTensor weight, ScalarType dtype)
    {
        if (weight.Device.type != DeviceType.CPU || dtype is not (ScalarType.BFloat16 or ScalarType.Float32))
            return weight.Dequantize(dtype);
        Tensor w = WeightWorkspace.Borrow(weight.Shape, dtype);
        switch (weight)
        {
            case Blockwise4BitTensor q: q.DequantizeInto(w); break;
            case Int8RowwiseTensor q: q.DequantizeInto(w); break;
            default: w.Dispose(); return weight.Dequantize(dtype);
        }
        return w;
    }
}
