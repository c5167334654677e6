using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// y = x·[W₁; W₂; …]ᵀ in fp32 for frozen weights written into one buffer (<see cref="FusedProjections"/>), as a custom
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
        return Forward(x, group);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var group = (IFrozenLinear[])ctx.get_data("group");
        var dtype = (ScalarType)ctx.get_data("dtype");
        Tensor gradInput;
        using (var scope = NewDisposeScope())
        {
            var product = grad_output.to(ScalarType.Float32).matmul(Weights(group, dtype));
            gradInput = product.to(dtype).MoveToOuterDisposeScope();
        }
        return [gradInput, null!];
    }

    /// <summary>x·[W₁; W₂; …]ᵀ computed in fp32, returned in x's dtype ([…, ΣOut]).</summary>
    public static Tensor Forward(Tensor x, IFrozenLinear[] group)
    {
        using var scope = NewDisposeScope();
        var y = nn.functional.linear(x.to(ScalarType.Float32), Weights(group, x.dtype));
        return y.to(x.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The group's weights, each as it is in <paramref name="dtype"/>, row after row in the thread's fp32 buffer.</summary>
    private static Tensor Weights(IFrozenLinear[] group, ScalarType dtype)
    {
        long rows = group.Sum(f => f.OutFeatures);
        var buffer = WeightWorkspace.Borrow([rows, group[0].InFeatures], ScalarType.Float32);
        long offset = 0;
        foreach (var f in group)
        {
            using var slice = buffer.narrow(0, offset, f.OutFeatures);
            f.WriteWidenedWeight(slice, dtype);
            offset += f.OutFeatures;
        }
        return buffer;
    }
}
