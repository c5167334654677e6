using FinQLoRA.Data.Tasks;
using FinQLoRA.Data.Tokenization;

namespace FinQLoRA.Data.Sft;

/// <summary>Turns examples into training sequences no longer than <c>maxSeqLen</c>. Too-long prompts are cut from
/// the left (keeping BOS), so the end of the prompt, which carries the question, stays next to the answer.</summary>
public sealed class SftTokenizer(ITextTokenizer tokenizer, int maxSeqLen)
{
    public int TruncatedPrompts { get; private set; }
    public int TruncatedTargets { get; private set; }

    public TokenizedExample Tokenize(Example example)
    {
        int[] prompt = tokenizer.Encode(example.Context, addBos: tokenizer.AddsBosByDefault);
        var target = tokenizer.Encode(example.Target, addBos: false).ToList();
        if (tokenizer.EosIds.Count > 0) target.Add(tokenizer.EosIds[0]);
        int keepBos = prompt.Length > 0 && prompt[0] == tokenizer.BosId ? 1 : 0;
        if (target.Count > maxSeqLen - keepBos - 1)
        {
            target = target.Take(Math.Max(1, maxSeqLen - keepBos - 1)).ToList();
            TruncatedTargets++;
        }
        int room = maxSeqLen - target.Count;
        if (prompt.Length > room)
        {
            prompt = prompt.Take(keepBos).Concat(prompt.Skip(prompt.Length - (room - keepBos))).ToArray();
            TruncatedPrompts++;
        }
        var ids = prompt.Concat(target).ToArray();
        var labels = Enumerable.Repeat(TokenizedExample.IgnoreIndex, prompt.Length).Concat(target).ToArray();
        return new TokenizedExample(ids, labels);
    }
}
