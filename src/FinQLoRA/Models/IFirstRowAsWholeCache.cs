namespace FinQLoRA.Models;

/// <summary>
/// A cache of rows at their own lengths (the server's slot pool) whose first row, while it runs alone, is laid out
/// exactly as a whole-model <see cref="KvCache"/> of batch 1: per layer a slot is [kvHeads, capacity, headDim],
/// contiguous at the start of the pool's tensor. A step written for that cache (the managed single-token step) can then
/// read and write the row in place.
/// </summary>
public interface IFirstRowAsWholeCache : IKvCache
{
    /// <summary>The first row holding <paramref name="length"/> positions, as a batch-1 <see cref="KvCache"/> over the
    /// same memory (owned by this cache; the same object on every call).</summary>
    KvCache FirstRow(int length);
}
