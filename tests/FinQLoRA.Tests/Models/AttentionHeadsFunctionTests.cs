using FinQLoRA.Models;
using FinQLoRA.Runtime;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>
/// A projection's rows to attention's heads in one node (issue 26: RoPE and grouped-query attention's repeat of k and v)
/// against the composed path it replaces (reshape, transpose, RoPE, <c>repeat_interleave</c>): the heads bit-identical
/// and in the same memory layout (SDPA's summation order follows the strides), and the rows' gradient at least as close
/// to fp64 autograd of the same formula as the composed bf16 backward.
/// </summary>
public sealed class AttentionHeadsFunctionTests
{
    private const int B = 2, T = 7, N = 2, D = 16;

    /// <param name="groups">1: q (or k, v without GQA); 3: k and v of a grouped-query layer</param>
    /// <param name="rotate">q and k: RoPE; v: none</param>
    /// <param name="slice">the rows as a column slice of a wider output (Phi-3's fused qkv), else contiguous</param>
    [Theory]
    [InlineData(1, true, false)]
    [InlineData(3, true, false)]
    [InlineData(3, false, false)]
    [InlineData(1, true, true)]
    [InlineData(3, true, true)]
    public void HeadsMatchTheComposedPathBitForBitAndFp64AutogradInBackward(int groups, bool rotate, bool slice)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(51);
        var positions = arange(0, (long)T).unsqueeze(0).expand(B, T);
        var (cos, sin) = new RotaryEmbedding(10000, null, D).CosSin(positions, ScalarType.BFloat16);
        long width = N * D + (slice ? 24 : 0);
        var wide0 = randn([B, T, width], generator: g).to(ScalarType.BFloat16);
        var upstream = randn([B, N * groups, T, D], generator: g).to(ScalarType.BFloat16);
        Tensor Rows(Tensor wide) => slice ? wide.narrow(-1, 8, N * D) : wide;

        Tensor Fused(Tensor wide)
        {
            Assert.True(AttentionHeadsKernel.Applies(Rows(wide), cos, sin, D), "the kernel must be the path under test");
            return AttentionHeadsFunction.Apply(Rows(wide), cos, sin, new(D, groups, rotate));
        }
        Tensor Composed(Tensor wide)
        {
            using var mode = TrainingFusions.Override(false);
            var heads = Rows(wide).reshape(B, T, N, D).transpose(1, 2);
            if (rotate) heads = RotaryEmbedding.Apply(heads, cos, sin);
            return groups == 1 ? heads : heads.repeat_interleave(groups, dim: 1);
        }
        var (fusedOut, fusedGrad) = Run(Fused, wide0, upstream);
        var (plainOut, plainGrad) = Run(Composed, wide0, upstream);
        TensorAssert.BitIdentical(plainOut, fusedOut, "heads");
        Assert.Equal(plainOut.stride(), fusedOut.stride());

        // fp64: rotate_half written as transformers does, x·cos + cat(−x₂, x₁)·sin with the unsigned sin, then the repeat
        var wide64 = wide0.to(ScalarType.Float64).requires_grad_(true);
        var heads64 = Rows(wide64).reshape(B, T, N, D).transpose(1, 2);
        if (rotate)
        {
            var s64 = sin.to(ScalarType.Float64).narrow(-1, D / 2, D / 2).repeat(1, 1, 1, 2);
            var rotated = cat([-heads64.narrow(-1, D / 2, D / 2), heads64.narrow(-1, 0, D / 2)], -1);
            heads64 = heads64 * cos.to(ScalarType.Float64) + rotated * s64;
        }
        heads64.repeat_interleave(groups, dim: 1).backward([upstream.to(ScalarType.Float64)]);
        var reference = Rows(wide64.grad!);
        double Error(Tensor t) => (Rows(t).to(ScalarType.Float64) - reference).abs().max().item<double>();
        double scale = reference.abs().max().item<double>();
        Assert.True(scale > 0, "the gradient is zero: the check would pass vacuously");
        Assert.True(Error(fusedGrad) <= Error(plainGrad) + scale / 256, $"fused gradient error {Error(fusedGrad):G3}, composed {Error(plainGrad):G3}, scale {scale:G3}");
        Assert.True(Error(fusedGrad) <= scale / 64, $"fused gradient error {Error(fusedGrad):G3} against fp64 at scale {scale:G3}");
        if (slice) // the columns around the rows get no gradient
            Assert.Equal(0, TensorAssert.MaxAbs(fusedGrad.narrow(-1, 0, 8)) + TensorAssert.MaxAbs(fusedGrad.narrow(-1, 8 + N * D, 16)));
    }

    private static (Tensor Output, Tensor Grad) Run(Func<Tensor, Tensor> f, Tensor wide0, Tensor upstream)
    {
        var wide = wide0.detach().clone().requires_grad_(true);
        var y = f(wide);
        y.backward([upstream]);
        return (y.detach(), wide.grad!.clone());
    }
}
