using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>
/// Summed cross-entropy on target positions, computing logits only where the loss is: the hidden states of the
/// positions whose next token is a target are gathered first and only they go through the norm and the output
/// projection. A classification example has 1–3 target tokens, so with Llama 3.1's 128,256-token vocabulary this
/// skips nearly all of the [B, T, vocab] fp32 logits (4.2 GB at batch 16 × 512) and their gradient. Norm and
/// projection act on each position alone, so the loss is the full computation's (<see cref="TokenLoss"/>).
/// When there are more target rows than one chunk of logits holds (<see cref="ChunkedCrossEntropy"/>, 65 rows at
/// 128,256 tokens), the projection and loss run chunk by chunk, keeping only the gradient w.r.t. the normed rows.
/// </summary>
public static class SupervisedLoss
{
    /// <param name="rowsPerChunk">overrides <see cref="ChunkedCrossEntropy.RowsPerChunk"/> (tests force small chunks)</param>
    /// <param name="onChunk">told each chunk's row count when the chunked loss runs</param>
    /// <param name="tokenWeights">a weight per label position [B, T], aligned with <c>batch.Labels</c>: differentially
    /// private training weighs each token by 1/(its example's target count), so that an example's loss is its mean
    /// token loss; null weighs every target 1</param>
    internal static Tensor Sum(DecoderModel model, SftCollator.Batch batch, long? rowsPerChunk = null, Action<long>? onChunk = null, Tensor? tokenWeights = null)
    {
        using var scope = NewDisposeScope();
        // Unpacked rows are padded on the right, so a real token's earlier keys are all real: the plain causal mask
        // gives every real position the hidden state the padding mask gives, and only padding (never a target) sees
        // more. Passing no padding lets training attention take the causal flag (AttentionMask.IsPlainCausal).
        var h = batch.Packed
            ? model.Hidden(batch.InputIds, batch.Positions!, AttentionMask.Packed(batch.Segments!))
            : model.Hidden(batch.InputIds);
        return Sum(model, h, batch.Labels, rowsPerChunk, onChunk, tokenWeights).MoveToOuterDisposeScope();
    }

    /// <summary>The loss from hidden states [B, T, hidden] before the final norm (each target weighted by
    /// <paramref name="tokenWeights"/> [B, T] when given).</summary>
    internal static Tensor Sum(DecoderModel model, Tensor h, Tensor labels, long? rowsPerChunk = null, Action<long>? onChunk = null, Tensor? tokenWeights = null)
    {
        using var scope = NewDisposeScope();
        long t = h.shape[1];
        var wanted = labels.narrow(1, 1, t - 1).reshape(-1);
        var rows = nonzero(wanted.ne(TokenizedExample.IgnoreIndex)).squeeze(-1);
        var selected = h.narrow(1, 0, t - 1).reshape(-1, h.shape[2]).index_select(0, rows);
        var targets = wanted.index_select(0, rows);
        var weights = tokenWeights?.narrow(1, 1, t - 1).reshape(-1).index_select(0, rows).to(ScalarType.Float32);
        long chunk = rowsPerChunk ?? ChunkedCrossEntropy.RowsPerChunk(model.Config.VocabSize);
        // Up to one chunk of rows (every classification batch), or a head that is not a frozen dense matrix: the
        // projection as the model does it, bit for bit what it always was.
        if (selected.shape[0] <= chunk || model.DenseOutputWeight(selected.dtype) is not { } weight)
        {
            var logits = model.Head(selected.unsqueeze(0)).squeeze(0);
            return (weights is null
                ? nn.functional.cross_entropy(logits, targets, reduction: nn.Reduction.Sum)
                : (nn.functional.cross_entropy(logits, targets, reduction: nn.Reduction.None) * weights).sum()).MoveToOuterDisposeScope();
        }
        // the final norm stays under ordinary autograd; only the projection and the loss are chunked
        var normed = model.FinalNorm.forward(selected);
        return ChunkedCrossEntropy.Sum(normed, weight, targets, chunk, onChunk, weights).MoveToOuterDisposeScope();
    }

    /// <summary>Summed cross-entropy of next-token predictions on target positions (labels ≠ -100), from full logits.</summary>
    internal static Tensor TokenLoss(Tensor logits, Tensor labels)
    {
        long t = logits.shape[1];
        var predicted = logits.narrow(1, 0, t - 1).reshape(-1, logits.shape[2]);
        var wanted = labels.narrow(1, 1, t - 1).reshape(-1);
        return nn.functional.cross_entropy(predicted, wanted, ignore_index: TokenizedExample.IgnoreIndex, reduction: nn.Reduction.Sum);
    }
}
