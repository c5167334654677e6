using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// y = x·Wᵀ for a frozen dense W whose matmuls are widened to fp32 (<see cref="CpuMatmulPrecision"/>), as a custom
/// autograd node: it saves only a reference to W (no input, no fp32 copy of W from forward to backward, which would
/// double the model's memory in fp32) and computes grad_x = grad_y·W in fp32 again in backward, rounded to x's dtype.
/// apply(x, W): backward returns one entry per argument (x, W), null for the frozen W.
/// </summary>
internal sealed class DenseMatmulFunction : autograd.SingleTensorFunction<DenseMatmulFunction>
{
    public override string Name => "DenseMatmul";

    public static Tensor Apply(Tensor x, Tensor weight) => apply(x, weight);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var weight = (Tensor)vars[1];
        ctx.save_for_backward([weight]); // a frozen leaf: saving it keeps a reference, not a copy
        ctx.save_data("dtype", x.dtype);
        return Forward(x, weight);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var weight = ctx.get_saved_variables()[0];
        var dtype = (ScalarType)ctx.get_data("dtype");
        Tensor gradInput = InputGradient(grad_output.to(dtype), weight);
        return [gradInput, null!];
    }

    /// <summary>g·W (the input gradient of x·Wᵀ) in <see cref="CpuMatmulPrecision.MatmulDType"/>, returned in g's dtype.</summary>
    public static Tensor InputGradient(Tensor g, Tensor weight)
    {
        using var scope = NewDisposeScope();
        var wide = CpuMatmulPrecision.MatmulDType(g);
        var product = g.to(wide).matmul(Widened(weight, g.dtype, wide));
        return (product.dtype == g.dtype ? product : product.to(g.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>x·Wᵀ in <see cref="CpuMatmulPrecision.MatmulDType"/>, returned in x's dtype.</summary>
    public static Tensor Forward(Tensor x, Tensor weight)
    {
        using var scope = NewDisposeScope();
        var wide = CpuMatmulPrecision.MatmulDType(x);
        var y = nn.functional.linear(x.to(wide), Widened(weight, x.dtype, wide));
        return (y.dtype == x.dtype ? y : y.to(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>The weight rounded to the input's dtype first, as the unwidened x·Wᵀ would use it (so widening changes
    /// only where the products are summed), then held in <paramref name="wide"/>: on the CPU in the thread's reused
    /// fp32 buffer, because a fresh weight-sized tensor per matmul costs more in page faults than the copy.</summary>
    private static Tensor Widened(Tensor weight, ScalarType dtype, ScalarType wide)
    {
        var w = weight.dtype == dtype ? weight : weight.to(dtype);
        if (wide == dtype) return w;
        if (w.device_type != DeviceType.CPU) return w.to(wide);
        var buffer = WeightWorkspace.Borrow(w.shape, wide);
        buffer.copy_(w);
        return buffer;
    }
}
