using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// Several projections of the same input (attention's q, k, v; the MLP's gate and up) as one matmul where the CPU
/// widens 16-bit matmuls to fp32 (<see cref="CpuMatmulPrecision"/>): their frozen weights are written row after row
/// into one fp32 buffer (a copy or a dequantization each, which the widened matmuls make anyway), the input is widened
/// once instead of once per projection, and one GEMM replaces three. Each adapter then adds its own term to its slice,
/// so adapters stay per projection (and PEFT-compatible on disk). Elsewhere, or when a base cannot write its weight
/// that way (LLM.int8 forwards), each projection runs alone as before.
/// </summary>
public static class FusedProjections
{
    public static Tensor[] Forward(Tensor x, params nn.Module<Tensor, Tensor>[] projections)
    {
        // the process-wide choice first: where nothing is widened (GPUs, AVX-512, fp32, decode steps) no base is asked
        if (CpuMatmulPrecision.MatmulDType(x) == x.dtype) return Separately(x, projections);
        var bases = new IFrozenLinear[projections.Length];
        for (int i = 0; i < projections.Length; i++)
        {
            var module = projections[i] is IAdaptedProjection adapted ? adapted.BaseLayer : projections[i];
            if (module is not IFrozenLinear frozen || !frozen.CanWriteWidenedWeight(x.dtype)) return Separately(x, projections);
            bases[i] = frozen;
        }

        using var scope = NewDisposeScope();
        var all = x.requires_grad && is_grad_enabled() ? FusedMatmulFunction.Apply(x, bases) : FusedMatmulFunction.Forward(x, bases);
        var outputs = new Tensor[projections.Length];
        long offset = 0;
        for (int i = 0; i < projections.Length; i++)
        {
            var own = all.narrow(-1, offset, bases[i].OutFeatures);
            offset += bases[i].OutFeatures;
            outputs[i] = (projections[i] is IAdaptedProjection adapted ? adapted.Adapt(x, own) : own).MoveToOuterDisposeScope();
        }
        return outputs;
    }

    private static Tensor[] Separately(Tensor x, nn.Module<Tensor, Tensor>[] projections) =>
        projections.Select(p => p.forward(x)).ToArray();
}
