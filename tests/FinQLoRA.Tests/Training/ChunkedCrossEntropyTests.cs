using FinQLoRA.Training;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Training;

/// <summary>The chunked loss on its own: the full <c>cross_entropy(linear(x, W).to(float32), sum)</c>'s loss and
/// gradient w.r.t. x, a chunk at a time.</summary>
public sealed class ChunkedCrossEntropyTests
{
    private const long Vocab = 512, Hidden = 64;

    private static (Tensor X, Tensor W, Tensor Targets) Inputs(long n, ScalarType dtype, long seed = 11)
    {
        using var g = new Generator((ulong)seed);
        var x = randn([n, Hidden], generator: g).to(dtype);
        var w = (randn([Vocab, Hidden], generator: g) * 0.3).to(dtype);
        var targets = randint(0, Vocab, [n], generator: g);
        return (x, w, targets);
    }

    /// <summary>Loss and x's gradient of the full computation and of the chunked one, both with the same incoming gradient.</summary>
    private static (Tensor FullLoss, Tensor FullGrad, Tensor Loss, Tensor Grad, List<long> Chunks) Both(
        long n, ScalarType dtype, long rowsPerChunk, double incoming)
    {
        var (x, w, targets) = Inputs(n, dtype);
        var xFull = x.detach().clone().requires_grad_(true);
        var full = nn.functional.cross_entropy(ChunkedCrossEntropy.Logits(xFull, w), targets, reduction: nn.Reduction.Sum);
        (full * incoming).backward();
        var xChunked = x.detach().clone().requires_grad_(true);
        var chunks = new List<long>();
        var chunked = ChunkedCrossEntropy.Sum(xChunked, w, targets, rowsPerChunk, chunks.Add);
        (chunked * incoming).backward();
        return (full.detach(), xFull.grad!.detach(), chunked.detach(), xChunked.grad!.detach(), chunks);
    }

    [Theory]
    [InlineData(ScalarType.Float32, 10, 3, new long[] { 3, 3, 3, 1 })] // a chunk size that does not divide N
    [InlineData(ScalarType.Float32, 10, 1, new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 })]
    [InlineData(ScalarType.Float32, 7, 16, new long[] { 7 })] // N smaller than a chunk
    [InlineData(ScalarType.BFloat16, 10, 3, new long[] { 3, 3, 3, 1 })]
    [InlineData(ScalarType.BFloat16, 10, 4, new long[] { 4, 4, 2 })]
    [InlineData(ScalarType.BFloat16, 7, 16, new long[] { 7 })]
    public void ChunkedLossAndInputGradientAreTheFullComputations(ScalarType dtype, long n, long rowsPerChunk, long[] expectedChunks)
    {
        using var scope = NewDisposeScope();
        var r = Both(n, dtype, rowsPerChunk, incoming: 1);
        Assert.Equal(expectedChunks, r.Chunks);
        Assert.Equal(ScalarType.Float32, r.Loss.dtype);
        TensorAssert.Close(r.FullLoss, r.Loss, rtol: 1e-6); // only the order of the fp32 sum over rows differs
        Assert.Equal(dtype, r.Grad.dtype);
        // the same ops on the same rows: softmax − onehot, the cast, the matmul; an fp32 GEMM of fewer rows may block
        // its sums differently (measured 1e-6 relative at 10 rows), bf16's rounding hides that
        TensorAssert.Close(r.FullGrad.to(ScalarType.Float32), r.Grad.to(ScalarType.Float32), rtol: 1e-5, atol: 1e-6);
    }

    [Theory]
    [InlineData(ScalarType.Float32, 1e-6)]
    // bf16: autograd rounds 0.37·(softmax − onehot) to bf16 before the matmul, the chunked loss rounds softmax − onehot
    // and scales the product: each of the 512 terms of a gradient element moves by up to a bf16 ulp (≤ 2^-7), so the
    // bound is relative to the gradient's scale, not to each (possibly cancelling) element
    [InlineData(ScalarType.BFloat16, 1.0 / 128)]
    public void BackwardScalesTheGradientByTheIncomingOne(ScalarType dtype, double rtol)
    {
        using var scope = NewDisposeScope();
        var r = Both(10, dtype, rowsPerChunk: 3, incoming: 0.37);
        double scale = TensorAssert.MaxAbs(r.FullGrad);
        TensorAssert.Close(r.FullGrad.to(ScalarType.Float32), r.Grad.to(ScalarType.Float32), rtol: rtol, atol: rtol * scale);
        var unscaled = Both(10, dtype, rowsPerChunk: 3, incoming: 1);
        TensorAssert.NotClose(unscaled.FullGrad.to(ScalarType.Float32), r.Grad.to(ScalarType.Float32), rtol: 1e-2);
    }

    [Fact]
    public void WithoutGradOnlyTheLossIsComputed()
    {
        using var scope = NewDisposeScope();
        var (x, w, targets) = Inputs(10, ScalarType.Float32);
        var full = nn.functional.cross_entropy(ChunkedCrossEntropy.Logits(x, w), targets, reduction: nn.Reduction.Sum);
        var chunks = new List<long>();
        Tensor loss;
        using (no_grad()) loss = ChunkedCrossEntropy.Sum(x.requires_grad_(true), w, targets, 3, chunks.Add);
        Assert.Equal([3L, 3, 3, 1], chunks);
        Assert.False(loss.requires_grad);
        TensorAssert.Close(full, loss, rtol: 1e-6);
        // grad on, but x needs none (nothing upstream trains): no graph either
        var frozen = ChunkedCrossEntropy.Sum(x.detach(), w, targets, 3);
        Assert.False(frozen.requires_grad);
        TensorAssert.Close(full, frozen, rtol: 1e-6);
    }

    [Fact]
    public void ChunksHoldAtMostTheBudgetOfFp32LogitsAndAtLeastOneRow()
    {
        Assert.Equal(65, ChunkedCrossEntropy.RowsPerChunk(128_256)); // 32 MiB / (128,256 × 4 B) = 65.4
        Assert.Equal(16_384, ChunkedCrossEntropy.RowsPerChunk(512));
        Assert.Equal(1, ChunkedCrossEntropy.RowsPerChunk(100_000_000));
        Assert.Throws<ArgumentOutOfRangeException>(() => ChunkedCrossEntropy.Sum(zeros(2, 2), zeros(3, 2), zeros(2, ScalarType.Int64), 0));
    }
}
