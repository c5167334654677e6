using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Serving;

/// <summary>
/// The server's fixed pool of KV-cache slots: per layer [slots, kvHeads, capacity, headDim], allocated once. Running
/// sequences occupy slots 0..n-1 (a leaving sequence's slot is refilled by moving the last one in), so a decode step
/// reads the prefix as a view, and each row writes at its own length. Two modes, set before each forward:
/// <see cref="BeginPrefill"/> (consecutive new slots, T positions from the same offset; a shorter prompt's padding
/// positions hold garbage that its mask hides and its decode steps overwrite), <see cref="BeginPrefillAt"/> (the same
/// with a start position per row, after prefix-cache hits of different lengths) and <see cref="BeginDecode"/> (n rows,
/// one token each at per-row positions).
/// </summary>
public sealed class SlotKvCache : IFirstRowAsWholeCache, IDisposable
{
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;
    private int _slot, _count, _offset, _rows, _firstRow, _span;
    private Tensor? _rowIndex, _lengths, _writePositions, _slotIndex;
    private KvCache? _firstRowView;

    /// <param name="firstLayer">a pipeline stage holds the slots of its layers only: [firstLayer, firstLayer + layerCount)</param>
    public SlotKvCache(ModelConfig config, int slots, int capacity, ScalarType dtype, Device device, int firstLayer = 0, int? layerCount = null)
    {
        Slots = slots;
        Capacity = capacity;
        FirstLayer = firstLayer;
        int layers = layerCount ?? config.NumLayers - firstLayer;
        _keys = new Tensor[layers];
        _values = new Tensor[layers];
        for (int i = 0; i < layers; i++)
        {
            _keys[i] = zeros([slots, config.NumKvHeads, capacity, config.HeadDim], dtype, device);
            _values[i] = zeros([slots, config.NumKvHeads, capacity, config.HeadDim], dtype, device);
        }
    }

    public int Slots { get; }
    /// <summary>The model's layer number of this pool's first layer (0 outside a pipeline).</summary>
    public int FirstLayer { get; }
    public int Capacity { get; }
    public long Bytes => _keys.Sum(k => k.numel() * k.element_size()) * 2;

    /// <summary>The next forward fills positions [offset, offset + T) of slots [<paramref name="slot"/>, slot + count)
    /// and attends to [0, offset + T) (a later chunk of a long prompt sees the chunks before it).</summary>
    public void BeginPrefill(int slot, int count = 1, int offset = 0)
    {
        _slot = slot;
        _count = count;
        _offset = offset;
        _rows = 0;
        _writePositions = null;
    }

    /// <summary>The next forward fills slots [<paramref name="slot"/>, slot + count), row r at positions
    /// <paramref name="writePositions"/>[r] ([count, T] int64, each row's own start + 0..T-1), and attends to
    /// [0, <paramref name="span"/>) of each (span ≥ every position written, ≤ <see cref="Capacity"/>).</summary>
    public void BeginPrefillAt(int slot, Tensor writePositions, int span)
    {
        _slot = slot;
        _count = (int)writePositions.shape[0];
        _rows = 0;
        _writePositions = writePositions;
        _slotIndex = arange(slot, slot + _count, ScalarType.Int64, writePositions.device).view(_count, 1); // freed with the caller's step
        _span = span;
    }

    /// <summary>The next forward appends one token to each of slots <paramref name="firstRow"/>..firstRow+n-1 (a
    /// pipeline's micro-batch is a run of the running rows), row r at position lengths[r] (<paramref name="lengths"/>
    /// [n] int64; <paramref name="span"/> ≥ max(lengths) + 1 positions are read).</summary>
    public void BeginDecode(Tensor rowIndex, Tensor lengths, int span, int firstRow = 0)
    {
        _rows = (int)lengths.shape[0];
        _firstRow = firstRow;
        _writePositions = null;
        _rowIndex = rowIndex;
        _lengths = lengths;
        _span = span;
    }

    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        using var noGrad = no_grad();
        layer -= FirstLayer;
        if (_rows == 0 && _writePositions is { } at)
        {
            // Advanced indices [count, 1] and [count, T] around a slice put their dimensions first: [count, T, kvHeads, d].
            _keys[layer].index_put_(k.permute(0, 2, 1, 3), TensorIndex.Tensor(_slotIndex!), TensorIndex.Colon, TensorIndex.Tensor(at));
            _values[layer].index_put_(v.permute(0, 2, 1, 3), TensorIndex.Tensor(_slotIndex!), TensorIndex.Colon, TensorIndex.Tensor(at));
            return (_keys[layer].narrow(0, _slot, _count).narrow(2, 0, _span), _values[layer].narrow(0, _slot, _count).narrow(2, 0, _span));
        }
        if (_rows == 0)
        {
            long t = k.shape[2];
            var keys = _keys[layer].narrow(0, _slot, _count);
            var values = _values[layer].narrow(0, _slot, _count);
            keys.narrow(2, _offset, t).copy_(k);
            values.narrow(2, _offset, t).copy_(v);
            return (keys.narrow(2, 0, _offset + t), values.narrow(2, 0, _offset + t));
        }
        // Advanced indices split by a slice put their dimension first: the target is [n, kvHeads, d].
        _keys[layer].index_put_(k.select(2, 0), TensorIndex.Tensor(_rowIndex!), TensorIndex.Colon, TensorIndex.Tensor(_lengths!));
        _values[layer].index_put_(v.select(2, 0), TensorIndex.Tensor(_rowIndex!), TensorIndex.Colon, TensorIndex.Tensor(_lengths!));
        return (_keys[layer].narrow(0, _firstRow, _rows).narrow(2, 0, _span), _values[layer].narrow(0, _firstRow, _rows).narrow(2, 0, _span));
    }

    /// <summary>Layer <paramref name="layer"/>'s keys and values, [slots, kvHeads, capacity, headDim] each (the prefix
    /// cache copies blocks in and out of them).</summary>
    internal (Tensor Keys, Tensor Values) Layer(int layer) => (_keys[layer - FirstLayer], _values[layer - FirstLayer]);

    /// <summary>Slot 0 (where a row running alone sits) as a batch-1 whole-model cache, for the managed single-token step.</summary>
    public KvCache FirstRow(int length)
    {
        // Views made once and kept out of any step's dispose scope: they live as long as the pool.
        _firstRowView ??= KvCache.Over(
            [.. _keys.Select(k => k.narrow(0, 0, 1).DetachFromDisposeScope())],
            [.. _values.Select(v => v.narrow(0, 0, 1).DetachFromDisposeScope())], FirstLayer);
        _firstRowView.Place(length);
        return _firstRowView;
    }

    /// <summary>Copies the first <paramref name="length"/> positions of slot <paramref name="from"/> into slot <paramref name="to"/>.</summary>
    public void Move(int from, int to, int length)
    {
        if (from == to || length == 0) return;
        // Indexing makes tensor handles: free them here, whichever step (or none) the caller is in.
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        for (int i = 0; i < _keys.Length; i++)
        {
            _keys[i][to].narrow(1, 0, length).copy_(_keys[i][from].narrow(1, 0, length));
            _values[i][to].narrow(1, 0, length).copy_(_values[i][from].narrow(1, 0, length));
        }
    }

    public void Dispose()
    {
        _firstRowView?.Dispose();
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
    }
}
