using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>
/// Summed cross-entropy of <c>linear(x, W).to(float32)</c> against targets, a block of rows at a time, so that at most
/// one chunk's [rows, vocab] logits exist at once (Liger's fused linear cross-entropy, Unsloth's chunked loss). With
/// Llama 3.1's 128,256-token vocabulary, 2,048 target rows would otherwise hold 1 GiB of fp32 logits, plus the bf16
/// logits and the log-softmax autograd keeps, plus their gradient in backward.
/// <para>Under grad the loss is <see cref="ChunkedCrossEntropyFunction"/>: each chunk's gradient w.r.t. x is computed in
/// forward and only grad_x [N, hidden] is kept. Without grad only the loss is computed. The dtypes are the full
/// computation's (<see cref="FinQLoRA.Models.DecoderModel.Head"/> then cross_entropy with reduction sum): logits in x's
/// dtype, cast to fp32, log-softmax and NLL in fp32; only the order of the fp32 sum over rows differs.</para>
/// </summary>
internal static class ChunkedCrossEntropy
{
    /// <summary>fp32 logits one chunk may hold (32 MiB: 65 rows of a 128,256-token vocabulary). The chunk's bf16
    /// logits, log-softmax and bf16 gradient come on top, about 3× this at the peak.</summary>
    public const long LogitBudgetBytes = 32L * 1024 * 1024;

    /// <summary>Rows per chunk for a vocabulary: as many fp32 logit rows as fit <paramref name="budgetBytes"/>, at least one.</summary>
    public static long RowsPerChunk(long vocabSize, long budgetBytes = LogitBudgetBytes) => Math.Max(1, budgetBytes / (vocabSize * 4));

    /// <summary>
    /// Σ cross_entropy over rows of x [N, hidden] (compute dtype) projected by the frozen weight [vocab, hidden]
    /// (already in x's dtype) against targets [N] (int64, all valid): an fp32 scalar.
    /// </summary>
    /// <param name="onChunk">told each chunk's row count (tests check that a forced chunk size is used)</param>
    /// <param name="rowWeights">[N] fp32: Σ w·cross_entropy instead of the plain sum (differentially private training)</param>
    public static Tensor Sum(Tensor x, Tensor weight, Tensor targets, long rowsPerChunk, Action<long>? onChunk = null, Tensor? rowWeights = null)
    {
        if (rowsPerChunk < 1) throw new ArgumentOutOfRangeException(nameof(rowsPerChunk), rowsPerChunk, "a chunk needs at least one row");
        if (is_grad_enabled() && x.requires_grad)
            return ChunkedCrossEntropyFunction.Apply(x, weight, targets, rowsPerChunk, onChunk, rowWeights);
        return LossOnly(x, weight, targets, rowsPerChunk, onChunk, rowWeights);
    }

    /// <summary>The loss without any gradient work (evaluation, or x that needs no gradient).</summary>
    private static Tensor LossOnly(Tensor x, Tensor weight, Tensor targets, long rowsPerChunk, Action<long>? onChunk, Tensor? rowWeights)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var total = zeros([], ScalarType.Float32, x.device);
        ForEachChunk(x.shape[0], rowsPerChunk, onChunk, (start, rows) =>
        {
            using var chunkScope = NewDisposeScope();
            var logits = Logits(x.narrow(0, start, rows), weight);
            var wanted = targets.narrow(0, start, rows);
            total.add_(rowWeights is null
                ? nn.functional.cross_entropy(logits, wanted, reduction: nn.Reduction.Sum)
                : (nn.functional.cross_entropy(logits, wanted, reduction: nn.Reduction.None) * rowWeights.narrow(0, start, rows)).sum());
        });
        return total.MoveToOuterDisposeScope();
    }

    /// <summary>One chunk's fp32 logits, as the head makes them: linear in x's dtype (widened where the CPU widens
    /// 16-bit matmuls), then the cast.</summary>
    internal static Tensor Logits(Tensor x, Tensor weight)
    {
        var logits = DenseLinear.Multiply(x, weight);
        return logits.dtype == ScalarType.Float32 ? logits : logits.to(ScalarType.Float32);
    }

    internal static void ForEachChunk(long n, long rowsPerChunk, Action<long>? onChunk, Action<long, long> body)
    {
        for (long start = 0; start < n; start += rowsPerChunk)
        {
            long rows = Math.Min(rowsPerChunk, n - start);
            onChunk?.Invoke(rows);
            body(start, rows);
        }
    }
}
