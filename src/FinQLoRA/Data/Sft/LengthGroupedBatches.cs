namespace FinQLoRA.Data.Sft;

/// <summary>
/// The order of one epoch's batches, a pure function of (seed, epoch): shuffle, cut into groups of
/// 50 batches, sort each group by length so a batch holds similar lengths (little padding), then shuffle the
/// batches, keeping the longest first so out-of-memory shows up at step one (as HF's LengthGroupedSampler).
/// With several data-parallel ranks, each global batch is split into per-rank slices (DistributedSampler-like).
/// Being a pure function is what lets a resumed run continue with exactly the same batches.
/// </summary>
public static class LengthGroupedBatches
{
    public static int[][] ForEpoch(IReadOnlyList<int> lengths, int batchSize, long seed, int epoch, bool groupByLength = true)
    {
        var rng = new Random(unchecked((int)(seed * 1000003 + epoch)));
        int[] order = Enumerable.Range(0, lengths.Count).ToArray();
        rng.Shuffle(order);
        if (!groupByLength) return order.Chunk(batchSize).ToArray();
        int group = batchSize * 50;
        var batches = new List<int[]>();
        foreach (var chunk in order.Chunk(group))
            batches.AddRange(chunk.OrderByDescending(i => lengths[i]).ThenBy(i => i).Chunk(batchSize));
        var shuffled = batches.ToArray();
        rng.Shuffle(shuffled);
        int longest = Array.FindIndex(shuffled, b => b.Max(i => lengths[i]) == lengths.Max());
        (shuffled[0], shuffled[longest]) = (shuffled[longest], shuffled[0]);
        return shuffled;
    }

    /// <summary>The part of a global batch that a data-parallel rank trains on (contiguous slices).</summary>
    public static int[] Shard(int[] globalBatch, int rank, int worldSize)
    {
        int per = (globalBatch.Length + worldSize - 1) / worldSize;
        return globalBatch.Skip(rank * per).Take(per).ToArray();
    }
}
