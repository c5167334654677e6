using TorchSharp;

namespace FinQLoRA.Distributed;

/// <summary>
/// Data-parallel gradient averaging: the gradients are copied, in order, into flat buckets of about
/// <see cref="BucketBytes"/> (one dtype and device per bucket), each bucket is all-reduced and averaged in one call,
/// and the averages are copied back. Few large messages instead of one per parameter, which is what makes
/// all-reduce reach its bandwidth (PyTorch DDP's default bucket is 25 MB too). A gradient larger than a bucket
/// travels alone.
/// </summary>
public sealed class GradientAllReducer(ICommunicator communicator, long bucketBytes = GradientAllReducer.DefaultBucketBytes)
{
    public const long DefaultBucketBytes = 25L * 1024 * 1024;

    public long BucketBytes { get; } = bucketBytes > 0 ? bucketBytes : throw new ArgumentOutOfRangeException(nameof(bucketBytes), bucketBytes, "bucket size must be positive");

    /// <summary>Bytes this rank sent in the last call (per <see cref="TrafficModel"/>).</summary>
    public long LastBytesSent { get; private set; }

    /// <summary>Buckets all-reduced in the last call.</summary>
    public int LastBucketCount { get; private set; }

    public long TotalBytesSent { get; private set; }

    /// <summary>Replaces every gradient by its mean over all ranks. Every rank passes the same list (same order,
    /// shapes and dtypes).</summary>
    public void AllReduceAverage(IReadOnlyList<torch.Tensor> gradients)
    {
        LastBytesSent = 0;
        LastBucketCount = 0;
        if (communicator.Size == 1) return;
        long before = communicator.BytesSent;
        var bucket = new List<torch.Tensor>();
        long bucketSize = 0;
        foreach (torch.Tensor gradient in gradients)
        {
            long bytes = gradient.numel() * gradient.element_size();
            bool fits = bucket.Count == 0 ||
                        (bucket[0].dtype == gradient.dtype && bucket[0].device_type == gradient.device_type && bucket[0].device_index == gradient.device_index && bucketSize + bytes <= BucketBytes);
            if (!fits)
            {
                Reduce(bucket);
                bucket.Clear();
                bucketSize = 0;
            }
            bucket.Add(gradient);
            bucketSize += bytes;
        }
        if (bucket.Count > 0) Reduce(bucket);
        LastBytesSent = communicator.BytesSent - before;
        TotalBytesSent += LastBytesSent;
    }

    private void Reduce(List<torch.Tensor> bucket)
    {
        using var scope = torch.NewDisposeScope();
        torch.Tensor flat = torch.cat(bucket.Select(g => g.reshape(-1)).ToList(), 0);
        communicator.AllReduceAverage(flat);
        long offset = 0;
        foreach (torch.Tensor gradient in bucket)
        {
            long n = gradient.numel();
            gradient.copy_(flat.narrow(0, offset, n).view(gradient.shape));
            offset += n;
        }
        LastBucketCount++;
    }
}
