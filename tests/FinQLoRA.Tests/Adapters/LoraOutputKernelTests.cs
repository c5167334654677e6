using FinQLoRA.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Adapters;

/// <summary>
/// The two ends of the LoRA group node for 16-bit bases on the CPU (issue 26) against libtorch's own ops: each branch's
/// output <c>(z_i + base_i).to(bf16)</c> bit for bit (the same fp32 add, the same rounding), and the output gradients
/// side by side as libtorch's cat and cast give them; its stacked A and block-diagonal B as libtorch's stack and block_diag.
/// </summary>
public sealed class LoraOutputKernelTests
{
    private static readonly long[] Widths = [48, 16, 16];

    /// <param name="sideBySide">the bases as one fused output (here a column slice of a wider one, so rows have a
    /// stride of their own), or one tensor per branch</param>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void OutputsAndGradientsMatchLibtorchsAddCastAndCat(bool sideBySide)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(61);
        long total = Widths.Sum();
        // large z next to small bases, so that rounding the sum differs from rounding either part
        var z = randn([10, total], generator: g) * 100;
        var wider = randn([2, 5, total + 8], generator: g).to(ScalarType.BFloat16);
        var bases = sideBySide ? new[] { wider.narrow(-1, 8, total) }
            : Widths.Select(w => randn([2, 5, w], generator: g).to(ScalarType.BFloat16)).ToArray();
        Assert.True(LoraOutputKernel.Applies(bases, z.dtype), "the kernel must be the path under test");

        var outputs = LoraOutputKernel.Outputs(z, bases, Widths, [2, 5]);
        long column = 0;
        for (int i = 0; i < Widths.Length; i++)
        {
            var baseI = sideBySide ? bases[0].narrow(-1, column, Widths[i]) : bases[i];
            var expected = (z.narrow(1, column, Widths[i]).view(2, 5, Widths[i]) + baseI).to(ScalarType.BFloat16);
            TensorAssert.BitIdentical(expected, outputs[i], $"output {i}");
            Assert.True(outputs[i].is_contiguous(), $"output {i} is its own contiguous tensor");
            column += Widths[i];
        }

        var grads = Widths.Select(w => randn([2, 5, w], generator: g).to(ScalarType.BFloat16)).ToArray();
        grads[1] = grads[1].transpose(0, 1).contiguous().transpose(0, 1); // a gradient in another layout
        var (wide, side) = LoraOutputKernel.Gradients(grads, Widths, 10, sideBySide ? [2, 5, total] : null);
        var catted = cat(grads.Select((t, i) => t.reshape(10, Widths[i])).ToList(), 1);
        TensorAssert.BitIdentical(catted.to(ScalarType.Float32), wide, "fp32 gradients");
        if (sideBySide) TensorAssert.BitIdentical(catted.view(2, 5, total), side!, "the fused base's gradient");
        else Assert.Null(side);
    }

    [Fact]
    public void StackedAAndBlockDiagonalBEqualLibtorchsStackAndBlockDiag()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(62);
        var a = Widths.Select(_ => randn([4, 24], generator: g)).ToArray();
        var b = Widths.Select(w => randn([w, 4], generator: g)).ToArray();
        TensorAssert.BitIdentical(stack(a, 0), LoraBlocks.Stack(a), "stacked A");
        TensorAssert.BitIdentical(block_diag(b), LoraBlocks.BlockDiagonal(b), "block-diagonal B");
    }
}
