namespace FinQLoRA.Serving.Pipeline;

/// <summary>A step's rows cut into up to M contiguous, nearly equal runs (the micro-batches that flow through the
/// stages one after another), for serve, generate and eval alike.</summary>
internal static class MicroBatchRuns
{
    public static (int From, int Count)[] Split(int rows, int microBatches)
    {
        int m = Math.Max(1, Math.Min(microBatches, rows));
        var runs = new (int, int)[m];
        int from = 0;
        for (int k = 0; k < m; k++)
        {
            int count = rows / m + (k < rows % m ? 1 : 0);
            runs[k] = (from, count);
            from += count;
        }
        return runs;
    }

    /// <summary>MPI tag of micro-batch <paramref name="m"/>'s hidden states (messages between two ranks arrive in order,
    /// so the tag only guards against a mix-up within a step).</summary>
    public static int Tag(int m) => 16 + m % 16000;
}
