using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// Several projections of the same input (attention's q, k, v; the MLP's gate and up) as one matmul, each adapter then
/// adding its own term to its slice, so adapters stay per projection (and PEFT-compatible on disk):
/// <list type="bullet">
/// <item>Dense weights that the loader stored as row blocks of one tensor (<see cref="FinQLoRA.Loading.ModelLoader"/>) are multiplied
/// in place as one [ΣOut, In] view, on any device.</item>
/// <item>Where the CPU widens 16-bit matmuls to fp32 (<see cref="CpuMatmulPrecision"/>), dense and 4-bit weights are
/// written row after row into one fp32 buffer (a copy or a dequantization each, which the widened matmuls make
/// anyway), and the input is widened once instead of once per projection.</item>
/// <item>Elsewhere 4-bit CPU weights are dequantized into one buffer in the input's dtype, as each would be alone.</item>
/// </list>
/// Anything else (LLM.int8 forwards, weights of their own storage that are not widened, quantized weights at decode sizes,
/// where each fused gemv reads its packed weight once) runs projection by projection.
/// </summary>
public static class FusedProjections
{
    public static Tensor[] Forward(Tensor x, params nn.Module<Tensor, Tensor>[] projections)
    {
        var bases = new IFrozenLinear[projections.Length];
        for (int i = 0; i < projections.Length; i++)
        {
            if ((projections[i] is IAdaptedProjection adapted ? adapted.BaseLayer : projections[i]) is not IFrozenLinear frozen)
                return Separately(x, projections);
            bases[i] = frozen;
        }

        using (var scope = NewDisposeScope())
        {
            if (AllAtOnce(x, bases) is { } all)
            {
                var wrapped = projections.OfType<IAdaptedProjection>().ToArray();
                if (wrapped.Length == projections.Length && wrapped[0].CanAdaptTogether(wrapped))
                    return [.. wrapped[0].AdaptTogether(x, [all], wrapped).Select(t => t.MoveToOuterDisposeScope())]; // contiguous, each its own tensor
                var outputs = new Tensor[projections.Length];
                // one split, not a narrow each: split's gradient is one cat of the parts' gradients, where each narrow's
                // was a zero-filled full-size tensor with its slice copied in, and a sum of those
                var parts = TrainingFusions.Enabled ? all.split([.. bases.Select(b => b.OutFeatures)], -1) : Narrowed(all, bases);
                for (int i = 0; i < projections.Length; i++)
                {
                    var own = parts[i];
                    // contiguous, as a projection's own output is: a slice's strides could steer later kernels (SDPA)
                    // to another summation order, so that a zero adapter would change the model's output
                    var output = projections[i] is IAdaptedProjection adapted ? adapted.Adapt(x, own) : own;
                    outputs[i] = output.contiguous().MoveToOuterDisposeScope();
                }
                return outputs;
            }
        }
        return Separately(x, projections);
    }

    /// <summary>The step of before (FINQLORA_FUSED_STEP=off): each projection's columns as a narrow.</summary>
    private static Tensor[] Narrowed(Tensor all, IFrozenLinear[] bases)
    {
        var parts = new Tensor[bases.Length];
        long offset = 0;
        for (int i = 0; i < bases.Length; i++)
        {
            parts[i] = all.narrow(-1, offset, bases[i].OutFeatures);
            offset += bases[i].OutFeatures;
        }
        return parts;
    }

    /// <summary>x·[W₁; W₂; …]ᵀ by one of the fused paths, or null where none applies.</summary>
    internal static Tensor? AllAtOnce(Tensor x, IFrozenLinear[] bases)
    {
        if (bases.Any(b => b.MultipliesAlone(x))) return null; // decode rows: each quantized gemv reads its packed weight once
        bool widened = CpuMatmulPrecision.MatmulDType(x) != x.dtype;
        if (!widened && bases.All(b => b is DenseLinear d && d.Weight.dtype == x.dtype)
            && DenseLinear.RowBlocksOfOneTensor(bases.Cast<DenseLinear>().ToArray()) is { } weights)
            return DenseLinear.RowsNode(x, weights) ? DenseMatmulFunction.Apply(x, weights)
                : nn.functional.linear(x, weights); // frozen weights: autograd keeps a reference, not a copy
        // a group larger than the workspace's cap runs one by one (each dense one then in row blocks)
        if ((widened || !bases.Any(b => b is DenseLinear)) && bases.Sum(b => b.OutFeatures * b.InFeatures) <= WeightWorkspace.MaxWidenedElements
            && bases.All(b => b.CanWriteWeight(x.dtype)))
            return x.requires_grad && is_grad_enabled() ? FusedMatmulFunction.Apply(x, bases) : FusedMatmulFunction.Forward(x, bases);
        return null;
    }

    private static Tensor[] Separately(Tensor x, nn.Module<Tensor, Tensor>[] projections)
    {
        var wrapped = projections.OfType<IAdaptedProjection>().ToArray();
        if (wrapped.Length == projections.Length && wrapped.Length > 1 && wrapped[0].CanAdaptTogether(wrapped))
        {
            // the group's adapters as one node over the bases' outputs computed one by one
            using var scope = NewDisposeScope();
            var bases = wrapped.Select(p => p.BaseLayer.forward(x)).ToArray();
            return [.. wrapped[0].AdaptTogether(x, bases, wrapped).Select(t => t.MoveToOuterDisposeScope())];
        }
        return projections.Select(p => p.forward(x)).ToArray();
    }
}
