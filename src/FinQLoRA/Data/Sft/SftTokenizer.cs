using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Formats;
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

    /// <summary>Any record: prompt/answer data as above; chat data segment by segment, the loss on the trained ones.</summary>
    public TokenizedExample Tokenize(SftRecord record) => record.Segments is { } segments ? Tokenize(segments) : Tokenize(record.Answer);

    /// <summary>
    /// Segments encoded one by one and joined (the chat templates' special tokens fall between segments, so this is
    /// the same as encoding the whole text). Too long: cut from the left, as a prompt is; the template starts with
    /// its own BOS, so none is added.
    /// </summary>
    public TokenizedExample Tokenize(IReadOnlyList<SftSegment> segments)
    {
        var ids = new List<int>();
        var labels = new List<int>();
        foreach (var s in segments)
        {
            int[] part = tokenizer.Encode(s.Text, addBos: false);
            ids.AddRange(part);
            labels.AddRange(s.Trained ? part : Enumerable.Repeat(TokenizedExample.IgnoreIndex, part.Length));
        }
        if (ids.Count > maxSeqLen)
        {
            int cut = ids.Count - maxSeqLen;
            ids.RemoveRange(0, cut);
            labels.RemoveRange(0, cut);
            TruncatedPrompts++;
        }
        return new TokenizedExample(ids.ToArray(), labels.ToArray());
    }
}
