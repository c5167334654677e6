using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// y = x·Wᵀ for a frozen dense W whose matmuls are widened to fp32 (<see cref="CpuMatmulPrecision"/>), as a custom
/// autograd node: it saves only a reference to W (no input, no fp32 copy of W from forward to backward, which would
/// double the model's memory in fp32) and computes grad_x = grad_y·W in fp32 again in backward, rounded to x's dtype.
/// <para>The fused step (issue 26) also takes it where the matmul runs in x's dtype (a native 16-bit CPU, a GPU) in
/// place of autograd's linear: x as one [N, in] view, one mm with Wᵀ, one view back, and in backward one mm with W;
/// linear's matmul folds x the same way and calls the same mm, so outputs and gradients are bit-identical, with about
/// half the dispatcher ops (linear, matmul, the fold's reshapes and the backward formula's transposes).</para>
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
        Tensor gradInput = InputGradient(grad_output.dtype == dtype ? grad_output : grad_output.to(dtype), weight);
        return [gradInput, null!];
    }

    /// <summary>g·W (the input gradient of x·Wᵀ) in <see cref="CpuMatmulPrecision.MatmulDType"/>, returned in g's dtype.
    /// A widened weight of more than <see cref="WeightWorkspace.MaxWidenedElements"/> is taken in row blocks, whose
    /// products are summed.</summary>
    public static Tensor InputGradient(Tensor g, Tensor weight)
    {
        using var scope = NewDisposeScope();
        if (OnRows(g, weight))
        {
            var rows = FusedMatmulFunction.Rows(g, weight.shape[0]).mm(weight);                        // [N, in]
            return (g.dim() == 2 ? rows : rows.view([.. g.shape[..^1], weight.shape[1]])).MoveToOuterDisposeScope();
        }
        var wide = CpuMatmulPrecision.MatmulDType(g);
        Tensor product;
        if (wide == g.dtype || weight.numel() <= WeightWorkspace.MaxWidenedElements)
            product = g.to(wide).matmul(Widened(weight, g.dtype, wide));
        else
        {
            var g2 = g.to(wide).reshape(-1, weight.shape[0]);
            var sum = zeros([g2.shape[0], weight.shape[1]], wide);
            foreach (var (first, rows) in RowBlocks(weight))
                sum.addmm_(g2.narrow(1, first, rows), Widened(weight.narrow(0, first, rows), g.dtype, wide));
            product = sum.view([.. g.shape[..^1], weight.shape[1]]);
        }
        return (product.dtype == g.dtype ? product : product.to(g.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>x·Wᵀ in <see cref="CpuMatmulPrecision.MatmulDType"/>, returned in x's dtype; a widened weight of more
    /// than <see cref="WeightWorkspace.MaxWidenedElements"/> in row blocks, each giving its columns of y.</summary>
    public static Tensor Forward(Tensor x, Tensor weight)
    {
        using var scope = NewDisposeScope();
        if (OnRows(x, weight))
        {
            var rows = FusedMatmulFunction.Rows(x, weight.shape[1]).mm(weight.t());                    // [N, out]
            return (x.dim() == 2 ? rows : rows.view([.. x.shape[..^1], weight.shape[0]])).MoveToOuterDisposeScope();
        }
        var wide = CpuMatmulPrecision.MatmulDType(x);
        Tensor y;
        if (wide == x.dtype || weight.numel() <= WeightWorkspace.MaxWidenedElements)
            y = nn.functional.linear(x.to(wide), Widened(weight, x.dtype, wide));
        else
        {
            var x32 = x.to(wide);
            y = empty([.. x.shape[..^1], weight.shape[0]], wide);
            foreach (var (first, rows) in RowBlocks(weight))
                y.narrow(-1, first, rows).copy_(nn.functional.linear(x32, Widened(weight.narrow(0, first, rows), x.dtype, wide)));
        }
        return (y.dtype == x.dtype ? y : y.to(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>Whether the product runs as one mm on rows: the fused step, a matmul in t's dtype, W in it too.</summary>
    private static bool OnRows(Tensor t, Tensor weight) =>
        TrainingFusions.Enabled && weight.dtype == t.dtype && CpuMatmulPrecision.MatmulDType(t) == t.dtype;

    /// <summary>(first row, row count) of consecutive blocks of at most <see cref="WeightWorkspace.MaxWidenedElements"/>.</summary>
    private static IEnumerable<(long First, long Rows)> RowBlocks(Tensor weight)
    {
        long perBlock = Math.Max(1, WeightWorkspace.MaxWidenedElements / weight.shape[1]);
        for (long first = 0; first < weight.shape[0]; first += perBlock)
            yield return (first, Math.Min(perBlock, weight.shape[0] - first));
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
