using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// Keys and values of past positions for every layer, preallocated as [B, kvHeads, capacity, headDim] so that
/// a decode step writes one slot instead of concatenating. Layers write at <see cref="Length"/>; the caller
/// advances it once per forward with <see cref="Advance"/>.
/// </summary>
public sealed class KvCache : IKvCache, IDisposable
{
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;

    public int Capacity { get; }
    public int Length { get; private set; }
    public int FirstLayer { get; }

    /// <param name="firstLayer">For pipeline stages that hold layers [firstLayer, firstLayer + layerCount).</param>
    public KvCache(ModelConfig config, long batch, int capacity, ScalarType dtype, Device device, int firstLayer = 0, int? layerCount = null)
    {
        int n = layerCount ?? config.NumLayers;
        FirstLayer = firstLayer;
        Capacity = capacity;
        _keys = new Tensor[n];
        _values = new Tensor[n];
        for (int i = 0; i < n; i++)
        {
            _keys[i] = zeros([batch, config.NumKvHeads, capacity, config.HeadDim], dtype, device);
            _values[i] = zeros([batch, config.NumKvHeads, capacity, config.HeadDim], dtype, device);
        }
    }

    /// <summary>Stores k, v ([B, kvHeads, T, d]) for <paramref name="layer"/> at the current length and returns
    /// views of all keys and values so far.</summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        int i = layer - FirstLayer;
        long t = k.shape[2];
        if (Length + t > Capacity)
            throw UserInputException.About($"the sequence needs {Length + t} positions but the KV cache holds {Capacity}; lower {new ConfigField("max_new_tokens")} or shorten the prompt");
        using (no_grad())
        {
            _keys[i].narrow(2, Length, t).copy_(k);
            _values[i].narrow(2, Length, t).copy_(v);
        }
        return (_keys[i].narrow(2, 0, Length + t), _values[i].narrow(2, 0, Length + t));
    }

    public void Advance(int tokens) => Length += tokens;

    /// <summary>A cache over storage someone else owns: <paramref name="keys"/> and <paramref name="values"/> are views
    /// [1, kvHeads, capacity, headDim] per layer (the server's first slot: <see cref="IFirstRowAsWholeCache"/>); its
    /// length is set by <see cref="Place"/> before each step.</summary>
    internal static KvCache Over(Tensor[] keys, Tensor[] values, int firstLayer) => new(keys, values, firstLayer);

    private KvCache(Tensor[] keys, Tensor[] values, int firstLayer)
    {
        _keys = keys;
        _values = values;
        FirstLayer = firstLayer;
        Capacity = (int)keys[0].shape[2];
    }

    /// <summary>Sets how many positions the cache holds (a view of a slot whose row is at its own length).</summary>
    internal void Place(int length) => Length = length;

    /// <summary>The whole key and value tensors of a layer, [batch, Hkv, capacity, d], for a decoder that writes them in place.</summary>
    internal (Tensor Keys, Tensor Values) LayerStorage(int layer) => (_keys[layer - FirstLayer], _values[layer - FirstLayer]);

    /// <summary>The cache's dtype and batch, as allocated.</summary>
    internal (ScalarType DType, long Batch) Layout => (_keys[0].dtype, _keys[0].shape[0]);

    public long Bytes => _keys.Sum(k => k.numel() * k.element_size()) * 2;

    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
    }
}
