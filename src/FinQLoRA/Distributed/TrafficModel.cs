namespace FinQLoRA.Distributed;

/// <summary>
/// Bytes one rank hands to the network for each operation, under the textbook bandwidth-optimal algorithms:
/// ring all-reduce (reduce-scatter + all-gather: 2·(p−1)/p of the buffer), ring all-gather ((p−1) × its input),
/// pairwise all-to-all ((p−1)/p of its input: the chunk for itself stays home), chain broadcast (every rank but the
/// last in the chain forwards the buffer once) and point-to-point (the message). A model, not a measurement: it
/// depends only on sizes, so the reducers' reports compare across MPI algorithms and backends.
/// </summary>
public static class TrafficModel
{
    public static long AllReduce(long bytes, int size) => 2 * (size - 1) * bytes / size;

    public static long AllGather(long inputBytes, int size) => (size - 1) * inputBytes;

    public static long AllToAll(long inputBytes, int size) => (size - 1) * inputBytes / size;

    public static long Broadcast(long bytes, int size, int rank, int root) =>
        size == 1 || rank == (root + size - 1) % size ? 0 : bytes;

    public static long Send(long bytes) => bytes;
}
