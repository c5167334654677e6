using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// y = x·[W₁; W₂; …]ᵀ for frozen CPU weights written into one buffer (<see cref="FusedProjections"/>), in
/// <see cref="CpuMatmulPrecision.MatmulDType"/> (fp32 where 16-bit matmuls are widened, else x's dtype), as a custom
/// autograd node that saves only the projections (no input, no weight copy) and writes the buffer again in backward:
/// grad_x = grad_y·[W₁; W₂; …]. apply(x, IFrozenLinear[]): backward returns one entry per argument, null for the group.
/// </summary>
internal sealed class FusedMatmulFunction : autograd.SingleTensorFunction<FusedMatmulFunction>
{
    public override string Name => "FusedMatmul";

    public static Tensor Apply(Tensor x, IFrozenLinear[] group) => apply(x, group);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var group = (IFrozenLinear[])vars[1];
        ctx.save_data("group", group);
        ctx.save_data("dtype", x.dtype);
        ctx.save_data("wide", CpuMatmulPrecision.MatmulDType(x));
        return Forward(x, group);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var group = (IFrozenLinear[])ctx.get_data("group");
        var dtype = (ScalarType)ctx.get_data("dtype");
        var wide = (ScalarType)ctx.get_data("wide");
        Tensor gradInput;
        using (var scope = NewDisposeScope())
        {
            var product = grad_output.to(wide).matmul(Weights(group, dtype, wide));
            gradInput = (product.dtype == dtype ? product : product.to(dtype)).MoveToOuterDisposeScope();
        }
        return [gradInput, null!];
    }

    /// <summary>x·[W₁; W₂; …]ᵀ, returned in x's dtype ([…, ΣOut]).</summary>
    public static Tensor Forward(Tensor x, IFrozenLinear[] group)
    {
        using var scope = NewDisposeScope();
        var wide = CpuMatmulPrecision.MatmulDType(x);
        var y = nn.functional.linear(x.to(wide), Weights(group, x.dtype, wide));
        return (y.dtype == x.dtype ? y : y.to(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>The group's weights, each as it is in <paramref name="dtype"/>, row after row in the thread's
    /// <paramref name="wide"/> buffer.</summary>
    private static Tensor Weights(IFrozenLinear[] group, ScalarType dtype, ScalarType wide)
    {
        long rows = group.Sum(f => f.OutFeatures);
        var buffer = WeightWorkspace.Borrow([rows, group[0].InFeatures], wide);
        long offset = 0;
        foreach (var f in group)
        {
            using var slice = buffer.narrow(0, offset, f.OutFeatures);
            f.WriteWeight(slice, dtype);
            offset += f.OutFeatures;
        }
        return buffer;
    }
}
