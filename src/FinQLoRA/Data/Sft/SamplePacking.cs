namespace FinQLoRA.Data.Sft;

/// <summary>
/// Sample packing: short examples bin-packed into rows of at most <c>max_seq_len</c> tokens, so a batch carries
/// little padding. Each row remembers where its examples start; the collator gives every token its position within
/// its own example and a segment id, and attention is block-diagonal and causal, so no example sees another (the
/// cross-contamination TRL's and torchtune's early packing had). The first token of an example is never a target,
/// since it would be predicted from the end of the example before it.
/// First-fit decreasing (longest first, ties by index), a pure function of the examples, so resume stays exact.
/// </summary>
public static class SamplePacking
{
    public static IReadOnlyList<TokenizedExample> Pack(IReadOnlyList<TokenizedExample> examples, int maxSeqLen)
    {
        if (maxSeqLen < 1) throw new ArgumentOutOfRangeException(nameof(maxSeqLen), maxSeqLen, "must be positive");
        var order = Enumerable.Range(0, examples.Count).OrderByDescending(i => examples[i].Length).ThenBy(i => i);
        var bins = new List<List<int>>();
        var used = new List<int>();
        foreach (int i in order)
        {
            int length = examples[i].Length;
            if (length > maxSeqLen)
                throw new ArgumentException($"example {i} has {length} tokens, more than max_seq_len {maxSeqLen}; tokenize with the same max_seq_len", nameof(examples));
            int bin = used.FindIndex(u => u + length <= maxSeqLen);
            if (bin < 0)
            {
                bins.Add([]);
                used.Add(0);
                bin = bins.Count - 1;
            }
            bins[bin].Add(i);
            used[bin] += length;
        }
        return bins.Select(members => Row(members.Select(m => examples[m]).ToList())).ToList();
    }

    private static TokenizedExample Row(IReadOnlyList<TokenizedExample> members)
    {
        int total = members.Sum(m => m.Length);
        var ids = new int[total];
        var labels = new int[total];
        var starts = new int[members.Count];
        int at = 0;
        for (int k = 0; k < members.Count; k++)
        {
            starts[k] = at;
            members[k].InputIds.CopyTo(ids, at);
            members[k].Labels.CopyTo(labels, at);
            labels[at] = TokenizedExample.IgnoreIndex;
            at += members[k].Length;
        }
        return new TokenizedExample(ids, labels) { SegmentStarts = starts, SegmentUnits = [.. members.Select(m => m.Unit)] };
    }

    /// <summary>Share of a batch's positions that are padding, for batches of <paramref name="batchSize"/> rows padded
    /// to their longest (what packing is for; the bench prints it with and without).</summary>
    public static double PaddingFraction(IReadOnlyList<TokenizedExample> rows, IEnumerable<int[]> batches)
    {
        long real = 0, padded = 0;
        foreach (var batch in batches)
        {
            if (batch.Length == 0) continue;
            int longest = batch.Max(i => rows[i].Length);
            real += batch.Sum(i => (long)rows[i].Length);
            padded += (long)longest * batch.Length;
        }
        return padded == 0 ? 0 : 1 - (double)real / padded;
    }
}
