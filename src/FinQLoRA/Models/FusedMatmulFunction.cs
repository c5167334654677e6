using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// y = x·[W₁; W₂; …]ᵀ for frozen CPU weights written into one buffer (<see cref="FusedProjections"/>; a 4-bit
/// projection alone in training is a group of one), in <see cref="CpuMatmulPrecision.MatmulDType"/> (fp32 where 16-bit
/// matmuls are widened, else x's dtype), as a custom autograd node that saves only the projections (no input, no weight
/// copy) and writes the buffer again in backward: grad_x = grad_y·[W₁; W₂; …].
/// <para>The fused step (issue 26) works on rows: x as one [N, in] view, one mm against a kept transposed view of the
/// workspace (<see cref="WeightWorkspace.Matrix"/>), the weights written into it by pointer, one view back, no cast
/// where the matmul runs in x's dtype; about five dispatcher ops each way where linear over a borrowed buffer, its
/// slices and the casts were about fifteen. The products are the same mm over the same operands as linear's, so the
/// outputs are bit-identical. FINQLORA_FUSED_STEP=off keeps the node of before.</para>
/// apply(x, IFrozenLinear[]): backward returns one entry per argument, null for the group.
/// </summary>
internal sealed class FusedMatmulFunction : autograd.SingleTensorFunction<FusedMatmulFunction>
{
    public override string Name => "FusedMatmul";

    public static Tensor Apply(Tensor x, IFrozenLinear[] group) => apply(x, group);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var group = (IFrozenLinear[])vars[1];
        bool rows = TrainingFusions.Enabled;
        ctx.save_data("group", group);
        ctx.save_data("x", (x.shape, x.dtype, CpuMatmulPrecision.MatmulDType(x), rows));
        return rows ? ForwardRows(x, group) : Forward(x, group);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var group = (IFrozenLinear[])ctx.get_data("group");
        var (shape, dtype, wide, rows) = ((long[], ScalarType, ScalarType, bool))ctx.get_data("x");
        Tensor gradInput;
        using (var scope = NewDisposeScope())
        {
            if (rows)
            {
                var g = Rows(grad_output, grad_output.shape[^1]);
                if (g.dtype != wide) g = g.to(wide);
                var product = g.mm(WeightsAt(group, dtype, wide, transposed: false));                 // [N, in]
                if (product.dtype != dtype) product = product.to(dtype);
                gradInput = (shape.Length == 2 ? product : product.view(shape)).MoveToOuterDisposeScope();
            }
            else
            {
                var product = grad_output.to(wide).matmul(Weights(group, dtype, wide));
                gradInput = (product.dtype == dtype ? product : product.to(dtype)).MoveToOuterDisposeScope();
            }
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

    /// <summary><see cref="Forward"/> on rows: the same mm as linear's (linear folds x to [N, in] and multiplies by Wᵀ).</summary>
    private static Tensor ForwardRows(Tensor x, IFrozenLinear[] group)
    {
        using var scope = NewDisposeScope();
        var wide = CpuMatmulPrecision.MatmulDType(x);
        var x2 = Rows(x, x.shape[^1]);
        if (x2.dtype != wide) x2 = x2.to(wide);
        var y = x2.mm(WeightsAt(group, x.dtype, wide, transposed: true));                                 // [N, ΣOut]
        if (y.dtype != x.dtype) y = y.to(x.dtype);
        return (x.dim() == 2 ? y : y.view([.. x.shape[..^1], y.shape[1]])).MoveToOuterDisposeScope();
    }

    /// <summary>t as [N, width] rows: a view of a contiguous tensor (one op; reshape would be two), else a copy.</summary>
    internal static Tensor Rows(Tensor t, long width) =>
        t.dim() == 2 ? t : t.is_contiguous() ? t.view(-1, width) : t.reshape(-1, width);

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

    /// <summary><see cref="Weights"/> as the workspace's kept [ΣOut, in] matrix or its [in, ΣOut] transpose, each weight
    /// written by pointer where it can (<see cref="IFrozenLinear.TryWriteWeightAt"/>); not to be disposed.</summary>
    private static Tensor WeightsAt(IFrozenLinear[] group, ScalarType dtype, ScalarType wide, bool transposed)
    {
        long rows = group.Sum(f => f.OutFeatures), inFeatures = group[0].InFeatures;
        var matrix = WeightWorkspace.Matrix(rows, inFeatures, wide, transposed: false);
        nint at = TensorMemory.DataPointer(matrix);
        long elementSize = matrix.element_size(), offset = 0;
        foreach (var f in group)
        {
            if (!f.TryWriteWeightAt(at + (nint)(offset * inFeatures * elementSize), wide, dtype))
            {
                using var slice = matrix.narrow(0, offset, f.OutFeatures);
                f.WriteWeight(slice, dtype);
            }
            offset += f.OutFeatures;
        }
        return transposed ? WeightWorkspace.Matrix(rows, inFeatures, wide, transposed: true) : matrix;
    }
}
