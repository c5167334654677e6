using FinQLoRA.Data.Tokenization;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Support;

/// <summary>
/// The reference that generation loops are checked against: greedy decoding that recomputes the whole sequence with
/// <see cref="DecoderModel.Forward(Tensor, Tensor?, KvCache?, bool)"/> at every step, with no KV cache, no padding, no
/// batch and no decode step, so it shares none of the engine's code paths past the model's layers. It stops as the
/// engine does: before an EOS id (not returned), or after <c>maxNewTokens</c>.
/// </summary>
internal static class NaiveGreedy
{
    public static int[] Generate(DecoderModel model, ITextTokenizer tokenizer, IReadOnlyList<int> prompt, int maxNewTokens)
    {
        if (model.training) model.eval();
        using var noGrad = no_grad();
        var sequence = prompt.Select(id => (long)id).ToList();
        var generated = new List<int>();
        for (int step = 0; step < maxNewTokens; step++)
        {
            using var scope = NewDisposeScope();
            var logits = model.Forward(tensor(sequence.ToArray(), [1, sequence.Count], device: model.Device), lastOnly: true);
            int next = (int)logits.select(1, 0).argmax(-1).item<long>();
            if (tokenizer.EosIds.Contains(next)) break;
            generated.Add(next);
            sequence.Add(next);
        }
        return [.. generated];
    }
}
