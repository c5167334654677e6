using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Serving.PrefixCaching;

/// <summary>
/// Automatic prefix caching (vLLM's, adapted to a slot pool): the keys and values of full blocks of
/// <see cref="BlockTokens"/> prompt tokens are kept in a pool allocated once (per layer [blocks, kvHeads, blockTokens,
/// headDim]) and found again by their <see cref="PrefixBlockKey"/>, which stands for the whole prefix up to the block,
/// the partition and the adapter. A newcomer's longest cached chain is copied into its slot (one gather per layer) and
/// only the rest of its prompt is prefilled; after a prompt is prefilled, its full blocks not yet kept are copied in.
/// When the pool is full, the least recently used block is dropped; a chain is touched from its last block to its
/// first, so the first blocks, which more prompts share, are the last to go.
/// Everything runs on the scheduler thread, and keys and values are copied between the pool and the slots (never
/// attended to in place), so a block that a running row came from can be evicted at any time: no reference counts or
/// pinning are needed, unlike vLLM's paged blocks, which running sequences read in place.
/// </summary>
internal sealed class PrefixCache : IDisposable
{
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;
    private readonly Dictionary<PrefixBlockKey, int> _index = [];
    private readonly PrefixBlockKey?[] _keyOf;
    private readonly LinkedList<int> _lru = new();             // First: least recently used
    private readonly LinkedListNode<int>?[] _lruNode;
    private readonly Stack<int> _free = new();
    private readonly int _kvHeads, _headDim;

    /// <summary>A pool of as many blocks as fit in <paramref name="bytes"/> (keys and values of every layer).</summary>
    public PrefixCache(ModelConfig config, int blockTokens, long bytes, ScalarType dtype, Device device)
    {
        BlockTokens = blockTokens;
        _kvHeads = config.NumKvHeads;
        _headDim = config.HeadDim;
        BlockBytes = 2L * config.NumLayers * config.NumKvHeads * blockTokens * config.HeadDim * ElementSize(dtype);
        Capacity = (int)Math.Min(int.MaxValue, bytes / BlockBytes);
        _keys = new Tensor[config.NumLayers];
        _values = new Tensor[config.NumLayers];
        for (int i = 0; i < config.NumLayers; i++)
        {
            // empty: a block is read only after it was written
            _keys[i] = empty([Capacity, _kvHeads, blockTokens, _headDim], dtype, device);
            _values[i] = empty([Capacity, _kvHeads, blockTokens, _headDim], dtype, device);
        }
        _keyOf = new PrefixBlockKey?[Capacity];
        _lruNode = new LinkedListNode<int>?[Capacity];
        for (int b = Capacity - 1; b >= 0; b--) _free.Push(b);
    }

    public int BlockTokens { get; }
    /// <summary>Blocks the pool holds at most.</summary>
    public int Capacity { get; }
    public long BlockBytes { get; }
    public long Bytes => BlockBytes * Capacity;
    /// <summary>Blocks held now.</summary>
    public int Count => _index.Count;
    /// <summary>A random id of this pool's model, part of every root key (<see cref="PrefixBlockKey.Root"/>).</summary>
    public Guid ModelId { get; } = Guid.NewGuid();

    /// <summary>The pool blocks of the longest cached prefix of <paramref name="keys"/> (a chain, in order), touched as used.</summary>
    public int[] Match(ReadOnlySpan<PrefixBlockKey> keys)
    {
        var found = new List<int>();
        foreach (var key in keys)
        {
            if (!_index.TryGetValue(key, out int block)) break;
            found.Add(block);
        }
        for (int i = found.Count - 1; i >= 0; i--) Touch(found[i]);
        return [.. found];
    }

    /// <summary>Copies <paramref name="blocks"/> (a chain from <see cref="Match"/>) into positions [0, blocks × BlockTokens)
    /// of <paramref name="slot"/>: one gather and one copy per layer.</summary>
    public void Load(int[] blocks, SlotKvCache slots, int slot)
    {
        if (blocks.Length == 0) return;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int n = blocks.Length;
        var index = tensor(blocks.Select(b => (long)b).ToArray(), device: _keys[0].device);
        for (int layer = 0; layer < _keys.Length; layer++)
        {
            var (k, v) = slots.Layer(layer);
            // the slot's [kvHeads, n·B, d] seen as [kvHeads, n, B, d] ← the pool's [n, kvHeads, B, d]
            k[slot].narrow(1, 0, n * BlockTokens).view(_kvHeads, n, BlockTokens, _headDim).copy_(_keys[layer].index_select(0, index).permute(1, 0, 2, 3));
            v[slot].narrow(1, 0, n * BlockTokens).view(_kvHeads, n, BlockTokens, _headDim).copy_(_values[layer].index_select(0, index).permute(1, 0, 2, 3));
        }
    }

    /// <summary>Keeps the blocks of <paramref name="keys"/> (the chain of a prompt whose first keys.Length × BlockTokens
    /// positions <paramref name="slot"/> holds) that the pool lacks, evicting the least recently used blocks of other
    /// chains; stops early rather than evict a block of this chain. Returns the blocks added.</summary>
    public int Store(ReadOnlySpan<PrefixBlockKey> keys, SlotKvCache slots, int slot)
    {
        var chain = new HashSet<int>();
        var missing = new List<int>();                 // block numbers within the prompt
        for (int b = 0; b < keys.Length; b++)
        {
            if (_index.TryGetValue(keys[b], out int block))
            {
                chain.Add(block);
                Touch(block);
            }
            else missing.Add(b);
        }
        var positions = new List<long>();
        var targets = new List<long>();
        foreach (int b in missing)
        {
            if (Allocate(chain) is not int block) break;
            chain.Add(block);
            _index[keys[b]] = block;
            _keyOf[block] = keys[b];
            Touch(block);
            positions.Add(b);
            targets.Add(block);
        }
        if (targets.Count > 0) Copy(slots, slot, positions.ToArray(), targets.ToArray());
        // leave the chain's first block the most recently used: its tail is evicted first
        for (int b = keys.Length - 1; b >= 0; b--)
            if (_index.TryGetValue(keys[b], out int block)) Touch(block);
        return targets.Count;
    }

    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
    }

    /// <summary>A free block, else the least recently used one that is not in <paramref name="chain"/> (evicted); null
    /// when only the chain's own blocks are left.</summary>
    private int? Allocate(HashSet<int> chain)
    {
        if (_free.TryPop(out int free)) return free;
        var victim = _lru.First;
        if (victim is null || chain.Contains(victim.Value)) return null;   // every other block is newer than the chain's
        int block = victim.Value;
        _index.Remove(_keyOf[block]!.Value);
        _keyOf[block] = null;
        _lru.Remove(victim);
        _lruNode[block] = null;
        return block;
    }

    private void Touch(int block)
    {
        if (_lruNode[block] is { } node) _lru.Remove(node);
        _lruNode[block] = _lru.AddLast(block);
    }

    /// <summary>Blocks at <paramref name="positions"/> (block numbers) of the slot into pool blocks <paramref name="targets"/>.</summary>
    private void Copy(SlotKvCache slots, int slot, long[] positions, long[] targets)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = _keys[0].device;
        var from = tensor(positions, device: device);
        var to = tensor(targets, device: device);
        int blocks = (int)positions.Max() + 1;
        for (int layer = 0; layer < _keys.Length; layer++)
        {
            var (k, v) = slots.Layer(layer);
            var kBlocks = k[slot].narrow(1, 0, blocks * BlockTokens).view(_kvHeads, blocks, BlockTokens, _headDim);   // [kvHeads, blocks, B, d]
            var vBlocks = v[slot].narrow(1, 0, blocks * BlockTokens).view(_kvHeads, blocks, BlockTokens, _headDim);
            _keys[layer].index_copy_(0, to, kBlocks.index_select(1, from).permute(1, 0, 2, 3));
            _values[layer].index_copy_(0, to, vBlocks.index_select(1, from).permute(1, 0, 2, 3));
        }
    }

    private static long ElementSize(ScalarType dtype)
    {
        using var probe = empty(1, dtype);
        return probe.element_size();
    }
}
