using FinQLoRA.Models;
using FinQLoRA.Runtime;
using static TorchSharp.torch;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Models;

/// <summary>
/// A dense bf16 weight larger than the widening workspace's cap (a large vocabulary's head) is multiplied in row
/// blocks: x·Wᵀ and its input gradient g·W equal the fp32 products rounded to bf16, and this thread's fp32 buffer stays
/// at the cap instead of growing to the weight's size. On CPUs that do not widen (AVX-512, or
/// FINQLORA_CPU_MATMUL=native) the same products run in the native kernel and only the values are checked.
/// </summary>
public sealed class WidenedRowBlocksTests
{
    [Fact]
    public void AWeightAboveTheCapIsMultipliedInRowBlocksWithTheSameProductsAndGradient()
    {
        WeightWorkspace.Release();
        using var scope = NewDisposeScope();
        var g = new Generator(3);
        long rows = WeightWorkspace.MaxWidenedElements / 4096 + 1; // 8,193 × 4,096: one row more than a block holds
        var w = (randn([rows, 4096], generator: g) * 0.02).to(ScalarType.BFloat16);
        var x0 = randn([2, 9, 4096], generator: g).to(ScalarType.BFloat16); // 18 rows: enough to be widened
        var gy = randn([2, 9, rows], generator: g).to(ScalarType.BFloat16);

        var x = x0.clone().requires_grad_(true);
        var y = DenseLinear.Multiply(x, w);
        y.backward([gy]);

        using (no_grad())
        {
            var w32 = w.to(ScalarType.Float32);
            WithinBf16Rounding(nn.functional.linear(x0.to(ScalarType.Float32), w32), y.to(ScalarType.Float32), "x·Wᵀ");
            WithinBf16Rounding(gy.to(ScalarType.Float32).matmul(w32), x.grad!.to(ScalarType.Float32), "g·W");
        }
        Assert.Equal(ScalarType.BFloat16, y.dtype);
        Assert.Equal(ScalarType.BFloat16, x.grad!.dtype);
        if (CpuMatmulPrecision.WidensHalfPrecision)
            Assert.True(WeightWorkspace.Elements(ScalarType.Float32) <= WeightWorkspace.MaxWidenedElements,
                $"fp32 workspace grew to {WeightWorkspace.Elements(ScalarType.Float32):N0} elements for a weight of {w.numel():N0}");
        WeightWorkspace.Release();
    }

    /// <summary>Within two bf16 roundings of the largest value (the result is rounded once; the summation order differs).</summary>
    private static void WithinBf16Rounding(Tensor expected, Tensor actual, string what)
    {
        TensorAssert.MaxDiffAtMost(expected, actual, TensorAssert.MaxAbs(expected) / 64, what);
    }
}
