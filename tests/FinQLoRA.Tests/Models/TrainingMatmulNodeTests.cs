using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>
/// The fused step's frozen-weight matmul nodes on rows (issue 26): <see cref="DenseMatmulFunction"/> in place of
/// autograd's linear for 16-bit weights, and <see cref="FusedMatmulFunction"/> for 4-bit weights alone and in groups.
/// Each must give the output and the input gradient of the step of before (FINQLORA_FUSED_STEP=off: linear over the
/// weight, or the quantized node of before) bit for bit: the products are the same mm over the same operands.
/// </summary>
public sealed class TrainingMatmulNodeTests
{
    private const long In = 64;
    private static readonly long[] Outs = [64, 32, 32];

    [Theory]
    [InlineData(16, 1)]
    [InlineData(16, 3)]
    [InlineData(4, 1)]
    [InlineData(4, 3)]
    public void TheRowsNodesGiveTheOutputsAndInputGradientsOfTheStepOfBefore(int bits, int projections)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(41);
        var outs = Outs.Take(projections).ToArray();
        // 16-bit weights as row blocks of one tensor, as the loader stores q, k, v (the fused matmul's one view)
        var stored = (randn([outs.Sum(), In], generator: g) * 0.1).to(ScalarType.BFloat16);
        var layers = outs.Select((o, i) => bits == 16
            ? (nn.Module<Tensor, Tensor>)new DenseLinear(stored.narrow(0, outs.Take(i).Sum(), o))
            : new QuantizedLinear(Quantizer.Quantize4Bit(stored.narrow(0, outs.Take(i).Sum(), o).to(ScalarType.Float32), FourBitType.Nf4, doubleQuant: true))).ToArray();
        var x0 = randn([2, 5, In], generator: g).to(ScalarType.BFloat16);
        var upstream = outs.Select(o => randn([2, 5, o], generator: g).to(ScalarType.BFloat16)).ToArray();

        var (fusedOut, fusedGrad) = Run(layers, x0, upstream, fused: true);
        var (plainOut, plainGrad) = Run(layers, x0, upstream, fused: false);
        for (int i = 0; i < projections; i++) TensorAssert.BitIdentical(plainOut[i], fusedOut[i], $"output {i}");
        TensorAssert.BitIdentical(plainGrad, fusedGrad, "input gradient");
        Assert.True(TensorAssert.MaxAbs(fusedGrad) > 0, "the input gradient is zero: the check would pass vacuously");
    }

    private static (Tensor[] Outputs, Tensor Grad) Run(nn.Module<Tensor, Tensor>[] layers, Tensor x0, Tensor[] upstream, bool fused)
    {
        using var mode = TrainingFusions.Override(fused);
        var x = x0.detach().clone().requires_grad_(true);
        var ys = layers.Length == 1 ? new[] { layers[0].forward(x) } : FusedProjections.Forward(x, layers);
        sum(stack(ys.Select((y, i) => (y.to(ScalarType.Float32) * upstream[i].to(ScalarType.Float32)).sum()).ToArray())).backward();
        return (ys.Select(y => y.detach()).ToArray(), x.grad!.clone());
    }
}
