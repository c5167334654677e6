namespace FinQLoRA.Runtime;

/// <summary>
/// Independent rows (a norm, a token's heads, a LoRA output row) run over the cores in blocks of a few rows each, so
/// that one hand-off to a thread carries enough work to pay for itself. The training kernels written in C# share it.
/// </summary>
internal static class RowBlocks
{
    public static void ForEach(long rows, long perBlock, Action<long> body)
    {
        long blocks = (rows + perBlock - 1) / perBlock;
        Parallel.For(0, blocks, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, block =>
        {
            long end = Math.Min(rows, (block + 1) * perBlock);
            for (long row = block * perBlock; row < end; row++) body(row);
        });
    }
}
