using TorchSharp;

namespace FinQLoRA.Formats.Checkpoints;

/// <summary>
/// A checkpoint file mapped into memory and cut into tensors without a copy. Each dtype gets one map of the whole file
/// (libtorch's <c>from_file</c> with <c>shared: false</c>: <c>mmap(MAP_PRIVATE)</c>, so the map is copy-on-write — a
/// write into such a tensor changes only this process's copy of that page, never the file); a tensor is a view of that
/// map (<c>as_strided</c> at its offset in elements). The map belongs to libtorch's storage: it is unmapped when the
/// last tensor over it is disposed, whether this object was disposed first or not, so a model built from views keeps
/// exactly the pages it uses and releases them with its own tensors.
/// <para>Pages are read on first use (the page cache's, not a copy); a tensor whose offset is not a multiple of its
/// element size cannot be a view (a misaligned safetensors header) and the caller copies it instead.</para>
/// </summary>
public sealed class MappedTensorFile : IDisposable
{
    private readonly Dictionary<torch.ScalarType, torch.Tensor> _maps = new();
    private readonly long _length;

    public string Path { get; }

    /// <param name="length">the file's length in bytes (checked by the caller's header parser)</param>
    public MappedTensorFile(string path, long length)
    {
        Path = path;
        _length = length;
    }

    /// <summary>
    /// A tensor of <paramref name="dtype"/> and <paramref name="shape"/> over the file's bytes from
    /// <paramref name="byteOffset"/>, sharing the file's pages; null when the offset is not aligned to the element size
    /// (or the dtype is not one a map can hold), so the caller reads a copy.
    /// </summary>
    public torch.Tensor? TryView(long byteOffset, long[] shape, torch.ScalarType dtype)
    {
        if (ElementSize(dtype) is not int size || byteOffset % size != 0) return null;
        long count = shape.Aggregate(1L, (a, b) => a * b);
        if (count == 0 || byteOffset + count * size > _length) return null;
        var map = MapOf(dtype, size);
        var strides = new long[shape.Length];
        long stride = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            strides[d] = stride;
            stride *= shape[d];
        }
        return map.as_strided(shape, strides, byteOffset / size);
    }

    private torch.Tensor MapOf(torch.ScalarType dtype, int size)
    {
        lock (_maps)
        {
            if (_maps.TryGetValue(dtype, out var map)) return map;
            // the whole file as one flat tensor of this dtype (a trailing partial element is left out); no pages are read yet
            // (kept out of any dispose scope the first caller runs in: later views need it)
            map = torch.from_file(Path, shared: false, size: _length / size, dtype: dtype).DetachFromDisposeScope();
            _maps[dtype] = map;
            return map;
        }
    }

    /// <summary>Bytes per element of the dtypes checkpoints store as plain arrays; null for the others.</summary>
    private static int? ElementSize(torch.ScalarType dtype) => dtype switch
    {
        torch.ScalarType.Byte or torch.ScalarType.Int8 => 1,
        torch.ScalarType.BFloat16 or torch.ScalarType.Float16 or torch.ScalarType.Int16 => 2,
        torch.ScalarType.Float32 or torch.ScalarType.Int32 => 4,
        torch.ScalarType.Float64 or torch.ScalarType.Int64 => 8,
        _ => null,
    };

    /// <summary>Drops this object's references to the maps; views already handed out keep theirs.</summary>
    public void Dispose()
    {
        lock (_maps)
        {
            foreach (var map in _maps.Values) map.Dispose();
            _maps.Clear();
        }
    }
}
