using FinQLoRA.Inference.Decoding;
using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Inference.Decoding;

/// <summary>
/// <see cref="Bf16StepMath.Attention"/> against libtorch's own <c>scaled_dot_product_attention</c> on bf16 tensors (the
/// op the libtorch decode step runs), one query row per head over cached keys: short spans (the exp's scalar tail only),
/// whole vectors of the approximate exp, and spans past the kernel's 512-key blocks (running max and rescaled sums).
/// Measured here: 87–100 % of values equal, the rest one ulp of the output's scale or less.
/// </summary>
public sealed unsafe class Bf16StepMathTests
{
    [Theory]
    [InlineData(8, 2, 7)]
    [InlineData(8, 2, 40)]
    [InlineData(64, 1, 300)]
    [InlineData(64, 3, 513)]
    [InlineData(64, 2, 1100)]
    public void AttentionIsLibtorchsSdpaWithinAnUlp(int d, int heads, int length)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var generator = new Generator((ulong)(1000 + length));
        var q = (randn([1, 1, heads, d], generator: generator) * 2).to(ScalarType.BFloat16); // heads sharing one KV head
        var k = randn([1, 1, length, d], generator: generator).to(ScalarType.BFloat16);
        var v = randn([1, 1, length, d], generator: generator).to(ScalarType.BFloat16);
        var expected = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: zeros([1, 1, 1, length], ScalarType.BFloat16));
        var q32 = q.to(ScalarType.Float32).contiguous();
        var output = new float[heads * d];
        var scores = new float[heads * Math.Min(length, 512)];
        fixed (float* o = output, s = scores)
            Bf16StepMath.Attention((float*)TensorMemory.DataPointer(q32), (ushort*)TensorMemory.DataPointer(k), (ushort*)TensorMemory.DataPointer(v),
                o, s, heads, d, length);
        var actual = tensor(output).reshape(1, 1, heads, d);
        Assert.True(Bf16Ulps.MaxOfScale(expected, actual) <= 1, $"{Bf16Ulps.MaxOfScale(expected, actual)} ulps from libtorch's attention");
        // what is left is fp32 summation order (oneDNN's products): most values equal; the probabilities left unrounded
        // (the kernel rounds them to bf16 before they weight the values) leave 50–80 % equal here
        Assert.True(Bf16Ulps.Equal(expected, actual) >= 0.85 * heads * d, $"only {Bf16Ulps.Equal(expected, actual)} of {heads * d} values equal libtorch's");
    }
}
