using FinQLoRA.Data.Sft;

namespace FinQLoRA.Training;

/// <summary>
/// The batches of a run: the batch order of each epoch is a pure function of (seed, epoch), so a resumed run picks
/// up at the same batch; each global batch is sharded over the ranks. With packing, the rows hold several examples
/// each and batching, sharding and resume work on rows as on examples.
/// </summary>
public sealed class TrainingBatches
{
    private readonly IReadOnlyList<TokenizedExample> _rows;
    private readonly int[] _lengths;
    private readonly long _seed;
    private readonly bool _groupByLength;

    private TrainingBatches(IReadOnlyList<TokenizedExample> rows, int globalBatch, long seed, bool groupByLength)
    {
        (_rows, GlobalBatch, _seed, _groupByLength) = (rows, globalBatch, seed, groupByLength);
        _lengths = rows.Select(e => e.Length).ToArray();
    }

    /// <summary>Examples (or packed rows) per epoch.</summary>
    public int Count => _rows.Count;

    /// <summary>Examples in one batch over all ranks.</summary>
    public int GlobalBatch { get; }

    public int BatchesPerEpoch => (Count + GlobalBatch - 1) / GlobalBatch;

    /// <param name="log">told what packing did</param>
    public static TrainingBatches Create(List<TokenizedExample> examples, TrainConfig c, int worldSize, Action<string> log)
    {
        int globalBatch = c.BatchSize * worldSize;
        if (!c.Packing) return new TrainingBatches(examples, globalBatch, c.Seed, c.GroupByLength);
        double before = Padding(examples, globalBatch, c);
        var rows = SamplePacking.Pack(examples, c.MaxSeqLen);
        log($"packing: {examples.Count} examples in {rows.Count} rows of up to {c.MaxSeqLen} tokens; padding {before:P1} → {Padding(rows, globalBatch, c):P1} of the batch positions");
        return new TrainingBatches([.. rows], globalBatch, c.Seed, c.GroupByLength);
    }

    /// <summary>The global batches of one epoch, as indices into the rows.</summary>
    public int[][] ForEpoch(int epoch) => LengthGroupedBatches.ForEpoch(_lengths, GlobalBatch, _seed, epoch, _groupByLength);

    /// <summary>This rank's micro-batches of one optimizer step: <paramref name="count"/> global batches from <paramref name="first"/>.</summary>
    public List<List<TokenizedExample>> Micro(int[][] order, int first, int count, int rank, int worldSize) =>
        order.Skip(first).Take(count).Select(g => LengthGroupedBatches.Shard(g, rank, worldSize).Select(i => _rows[i]).ToList()).ToList();

    private static double Padding(IReadOnlyList<TokenizedExample> rows, int globalBatch, TrainConfig c) =>
        SamplePacking.PaddingFraction(rows, LengthGroupedBatches.ForEpoch(rows.Select(e => e.Length).ToArray(), globalBatch, c.Seed, 0, c.GroupByLength));
}
