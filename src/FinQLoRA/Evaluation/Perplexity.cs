using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Evaluation;

/// <summary>
/// Perplexity, exp(mean negative log-likelihood per predicted token), the standard measure of how much a model
/// degrades when its weights are quantized: a uniform model over V tokens scores exactly V.
/// </summary>
public static class Perplexity
{
    /// <summary>
    /// Sum of −log p(target) over all positions and the number of positions, from logits [..., V] and targets [...]
    /// (same leading shape). Computed in float64 so long texts do not lose precision in the sum.
    /// </summary>
    public static (double Sum, long Count) NegativeLogLikelihood(Tensor logits, Tensor targets)
    {
        using var scope = NewDisposeScope();
        long v = logits.shape[^1];
        var flat = logits.reshape(-1, v).to(ScalarType.Float64);
        var t = targets.reshape(-1).to(ScalarType.Int64);
        if (flat.shape[0] != t.shape[0])
            throw new ArgumentException($"logits have {flat.shape[0]} positions but targets {t.shape[0]}", nameof(targets));
        var nll = nn.functional.cross_entropy(flat, t, reduction: nn.Reduction.Sum);
        return (nll.item<double>(), t.shape[0]);
    }

    /// <summary>exp(mean −log p(target)) for logits [..., V] and targets [...].</summary>
    public static double FromLogits(Tensor logits, Tensor targets)
    {
        var (sum, count) = NegativeLogLikelihood(logits, targets);
        return Math.Exp(sum / count);
    }

    /// <summary>
    /// Perplexity of <paramref name="ids"/> under <paramref name="model"/>: every token after the first is predicted
    /// from the tokens before it. Texts longer than <paramref name="window"/> tokens (default: the model's
    /// max_position_embeddings) are cut into consecutive windows, each predicted from its own start, so every
    /// token is scored exactly once.
    /// </summary>
    public static double Compute(DecoderModel model, IReadOnlyList<int> ids, int? window = null)
    {
        if (ids.Count < 2) throw new UserInputException($"perplexity: the text has {ids.Count} token(s); at least 2 are needed");
        int w = window ?? model.Config.MaxPositionEmbeddings;
        if (w < 2) throw new UserInputException($"perplexity: window {w} must be at least 2 tokens");
        using var noGrad = no_grad();
        double sum = 0;
        long count = 0;
        // window k covers ids[start .. start + w) and scores ids[start + 1 .. start + w); the next starts at its last token
        for (int start = 0; start < ids.Count - 1; start += w - 1)
        {
            using var scope = NewDisposeScope();
            int length = Math.Min(w, ids.Count - start);
            var chunk = tensor(ids.Skip(start).Take(length).Select(i => (long)i).ToArray(), ScalarType.Int64, model.Device).unsqueeze(0);
            var logits = model.Forward(chunk.narrow(1, 0, length - 1));
            var (s, n) = NegativeLogLikelihood(logits, chunk.narrow(1, 1, length - 1));
            sum += s;
            count += n;
        }
        return Math.Exp(sum / count);
    }
}
