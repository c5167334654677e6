using System.IO.MemoryMappedFiles;
using System.Text;

namespace FinQLoRA.Formats.Gguf;

/// <summary>
/// A GGUF file (v2 or v3), memory-mapped. Layout (gguf.h): magic "GGUF", u32 version, u64 tensor count, u64 KV count,
/// the KV pairs (u64-length strings, typed values, arrays possibly nested), the tensor infos (name, u32 n_dims,
/// u64 ne[n_dims], u32 ggml type, u64 offset), padding to <c>general.alignment</c> (default 32), then the data area.
/// Every length, count and offset is checked against the file size before it is used, so a damaged file gives a
/// one-line <see cref="UserInputException"/> instead of a crash or a huge allocation.
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" read as a little-endian u32
    public const int DefaultAlignment = 32;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly Dictionary<string, GgufTensorInfo> _byName = new(StringComparer.Ordinal);

    public string Path { get; }
    public long Length { get; }
    public uint Version { get; }
    public int Alignment { get; }
    /// <summary>Absolute file offset of the data area.</summary>
    public long DataOffset { get; }
    /// <summary>All KV pairs in file order. Values are CLR scalars (byte, sbyte, ushort, short, uint, int, float, bool,
    /// string, ulong, long, double) or <see cref="GgufArray"/>.</summary>
    public IReadOnlyList<KeyValuePair<string, object>> Metadata { get; }
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    private readonly Dictionary<string, object> _kv = new(StringComparer.Ordinal);

    public GgufFile(string path)
    {
        Path = path;
        if (!File.Exists(path)) throw new UserInputException($"{path}: file not found");
        Length = new FileInfo(path).Length;
        if (Length < 24)
            throw new UserInputException($"{path}: truncated GGUF file ({Length} bytes; the 24-byte header needs more) — download or convert it again");
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        try
        {
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _base = p + _view.PointerOffset;
            var c = new Cursor(this);
            uint magic = c.U32("magic");
            if (magic != Magic)
                throw new UserInputException($"{path}: not a GGUF file (magic 0x{magic:X8}, expected \"GGUF\")");
            Version = c.U32("version");
            if (Version is not (2 or 3))
                throw new UserInputException($"{path}: GGUF version {Version} is not supported (2 and 3 are); reconvert the model with a current llama.cpp");
            long tensorCount = c.Count("tensor count", minBytesEach: 24);
            long kvCount = c.Count("KV count", minBytesEach: 12);

            var metadata = new List<KeyValuePair<string, object>>();
            for (long i = 0; i < kvCount; i++)
            {
                string key = c.String($"key of KV pair {i}");
                var type = c.ValueType(key);
                object value = c.Value(type, key, depth: 0);
                if (!_kv.TryAdd(key, value))
                    throw new UserInputException($"{path}: metadata key '{key}' appears twice");
                metadata.Add(new(key, value));
            }
            Metadata = metadata;

            Alignment = DefaultAlignment;
            if (_kv.TryGetValue("general.alignment", out var a))
            {
                if (a is not uint align || align == 0 || (align & (align - 1)) != 0 || align > 1 << 20)
                    throw new UserInputException($"{path}: 'general.alignment' is {a} ({a.GetType().Name}); it must be a u32 power of two");
                Alignment = (int)align;
            }

            var infos = new List<(string Name, long[] Ne, GgmlType Type, long Offset)>();
            for (long i = 0; i < tensorCount; i++)
            {
                string name = c.String($"name of tensor {i}");
                uint nDims = c.U32($"tensor '{name}' n_dims");
                if (nDims is 0 or > 4)
                    throw new UserInputException($"{path}: tensor '{name}' has {nDims} dimensions (ggml allows 1 to 4); the file is damaged");
                var ne = new long[nDims];
                for (int d = 0; d < nDims; d++)
                {
                    ulong n = c.U64($"tensor '{name}' ne[{d}]");
                    if (n == 0 || n > long.MaxValue / 8)
                        throw new UserInputException($"{path}: tensor '{name}' has dimension ne[{d}] = {n}; the file is damaged");
                    ne[d] = (long)n;
                }
                uint type = c.U32($"tensor '{name}' type");
                if (!GgmlTypes.IsKnown(type))
                    throw new UserInputException($"{path}: tensor '{name}' has ggml type {type}, which FinQLoRA does not know; convert the model to F32, F16, BF16 or Q8_0 with llama.cpp");
                ulong offset = c.U64($"tensor '{name}' offset");
                if (offset > (ulong)Length)
                    throw new UserInputException($"{path}: tensor '{name}' starts at data offset {offset}, past the end of the {Length}-byte file; the file is truncated — download or convert it again");
                infos.Add((name, ne, (GgmlType)type, (long)offset));
            }
            DataOffset = Align(c.Position, Alignment);

            var tensors = new List<GgufTensorInfo>();
            long dataLength = Length - DataOffset;
            foreach (var (name, ne, type, offset) in infos)
            {
                long? bytes;
                try { bytes = GgmlTypes.ByteCount(type, ne); }
                catch (OverflowException)
                {
                    throw new UserInputException($"{path}: tensor '{name}' has shape ne=[{string.Join(", ", ne)}], more bytes than 64 bits can count; the file is damaged");
                }
                if (bytes is not long count)
                    throw new UserInputException($"{path}: tensor '{name}' of type {type} has shape ne=[{string.Join(", ", ne)}], which is not a whole number of {type} blocks");
                if (offset % Alignment != 0)
                    throw new UserInputException($"{path}: tensor '{name}' starts at data offset {offset}, not a multiple of the alignment {Alignment}; the file is damaged");
                // Compared as count > dataLength - offset: offset + count can overflow for a damaged count.
                if (DataOffset > Length || offset > dataLength || count > dataLength - offset)
                    throw new UserInputException($"{path}: tensor '{name}' needs {count} bytes from data offset {offset}, but the file holds only {Math.Max(0, dataLength)} data bytes; the file is truncated — download or convert it again");
                var info = new GgufTensorInfo(name, ne, type, offset, count);
                if (!_byName.TryAdd(name, info))
                    throw new UserInputException($"{path}: tensor '{name}' appears twice");
                tensors.Add(info);
            }
            RefuseOverlaps(path, tensors);
            Tensors = tensors;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Two tensors sharing bytes would alias each other's weights; llama.cpp refuses such files too.</summary>
    private static void RefuseOverlaps(string path, List<GgufTensorInfo> tensors)
    {
        GgufTensorInfo? previous = null;
        foreach (var t in tensors.Where(t => t.ByteCount > 0).OrderBy(t => t.Offset))
        {
            if (previous != null && t.Offset < previous.Offset + previous.ByteCount)
                throw new UserInputException($"{path}: tensor '{t.Name}' (data offset {t.Offset}) overlaps tensor '{previous.Name}' (bytes [{previous.Offset}, {previous.Offset + previous.ByteCount})); the file is damaged — download or convert it again");
            previous = t;
        }
    }

    internal static long Align(long offset, int alignment) => (offset + alignment - 1) / alignment * alignment;

    public bool Contains(string tensor) => _byName.ContainsKey(tensor);

    public GgufTensorInfo Tensor(string name) => _byName.TryGetValue(name, out var t)
        ? t
        : throw new UserInputException($"{Path}: tensor '{name}' not found");

    /// <summary>Pointer to a tensor's bytes inside the mapping; valid until this file is disposed.</summary>
    internal byte* Data(GgufTensorInfo tensor) => _base + DataOffset + tensor.Offset;

    public bool ContainsKey(string key) => _kv.ContainsKey(key);

    public object? Get(string key) => _kv.GetValueOrDefault(key);

    public string? GetString(string key) => Get(key) switch
    {
        null => null,
        string s => s,
        var v => throw WrongType(key, v, "a string"),
    };

    /// <summary>Any integer type, widened; GGUF writers differ in which width they use (u32 vs i32 vs u64).</summary>
    public long? GetInteger(string key) => Get(key) switch
    {
        null => null,
        byte v => v, sbyte v => v, ushort v => v, short v => v, uint v => v, int v => v, long v => v,
        ulong v when v <= long.MaxValue => (long)v,
        var v => throw WrongType(key, v, "an integer"),
    };

    public double? GetFloat(string key) => Get(key) switch
    {
        null => null,
        float f => f,
        double d => d,
        var v => throw WrongType(key, v, "a float"),
    };

    public bool? GetBool(string key) => Get(key) switch
    {
        null => null,
        bool b => b,
        var v => throw WrongType(key, v, "a bool"),
    };

    /// <summary>An array value whose items are of CLR type <typeparamref name="T"/> (e.g. string, float, int).</summary>
    public T[]? GetArray<T>(string key) => Get(key) switch
    {
        null => null,
        GgufArray { Items: T[] items } => items,
        var v => throw WrongType(key, v, $"an array of {typeof(T).Name}"),
    };

    private UserInputException WrongType(string key, object value, string expected) =>
        new($"{Path}: metadata key '{key}' holds {Describe(value)}, expected {expected}");

    private static string Describe(object v) => v is GgufArray a ? $"an array of {a.ElementType}" : $"a {v.GetType().Name} ({v})";

    public void Dispose()
    {
        if (_view != null && _base != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view?.Dispose();
        _map?.Dispose();
    }

    /// <summary>Reads the header sequentially, checking each read against the file length.</summary>
    private sealed class Cursor(GgufFile file)
    {
        public long Position { get; private set; } = 0;

        private byte* Take(long bytes, string what)
        {
            if (bytes < 0 || Position + bytes > file.Length)
                throw new UserInputException($"{file.Path}: truncated GGUF header: {what} needs {bytes} bytes at offset {Position}, but the file ends at {file.Length} — download or convert it again");
            byte* p = file._base + Position;
            Position += bytes;
            return p;
        }

        public uint U32(string what) => *(uint*)Take(4, what);
        public ulong U64(string what) => *(ulong*)Take(8, what);

        /// <summary>A u64 count, refused when even the smallest items could not fit in the rest of the file.</summary>
        public long Count(string what, int minBytesEach)
        {
            ulong n = U64(what);
            if (n > (ulong)((file.Length - Position) / minBytesEach))
                throw new UserInputException($"{file.Path}: {what} is {n}, more than the remaining {file.Length - Position} bytes can hold; the file is truncated or damaged");
            return (long)n;
        }

        public string String(string what)
        {
            ulong n = U64($"length of {what}");
            if (n > (ulong)(file.Length - Position))
                throw new UserInputException($"{file.Path}: truncated GGUF header: {what} is {n} bytes long at offset {Position}, but the file ends at {file.Length} — download or convert it again");
            if (n > int.MaxValue)
                throw new UserInputException($"{file.Path}: {what} is {n} bytes long, more than a string can hold; the file is damaged");
            byte* p = Take((long)n, what);
            return Encoding.UTF8.GetString(p, (int)n);
        }

        public GgufValueType ValueType(string key)
        {
            uint t = U32($"type of '{key}'");
            if (!Enum.IsDefined(typeof(GgufValueType), t))
                throw new UserInputException($"{file.Path}: metadata key '{key}' has unknown value type {t}; the file is damaged or from a newer GGUF version");
            return (GgufValueType)t;
        }

        public object Value(GgufValueType type, string key, int depth) => type switch
        {
            GgufValueType.UInt8 => *Take(1, key),
            GgufValueType.Int8 => *(sbyte*)Take(1, key),
            GgufValueType.UInt16 => *(ushort*)Take(2, key),
            GgufValueType.Int16 => *(short*)Take(2, key),
            GgufValueType.UInt32 => *(uint*)Take(4, key),
            GgufValueType.Int32 => *(int*)Take(4, key),
            GgufValueType.Float32 => *(float*)Take(4, key),
            GgufValueType.Bool => *Take(1, key) != 0,
            GgufValueType.String => String(key),
            GgufValueType.UInt64 => *(ulong*)Take(8, key),
            GgufValueType.Int64 => *(long*)Take(8, key),
            GgufValueType.Float64 => *(double*)Take(8, key),
            GgufValueType.Array => Array(key, depth),
            _ => throw new UserInputException($"{file.Path}: metadata key '{key}' has unknown value type {type}"),
        };

        private GgufArray Array(string key, int depth)
        {
            if (depth > 8)
                throw new UserInputException($"{file.Path}: metadata key '{key}' nests arrays more than 8 deep; the file is damaged");
            var elementType = ValueType(key);
            int minBytes = elementType switch
            {
                GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
                GgufValueType.UInt16 or GgufValueType.Int16 => 2,
                GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
                GgufValueType.Array => 12,
                _ => 8,
            };
            long n = Count($"length of array '{key}'", minBytes);
            if (n > int.MaxValue)
                throw new UserInputException($"{file.Path}: array '{key}' has {n} items, more than FinQLoRA supports");
            return elementType switch
            {
                GgufValueType.UInt8 => new(elementType, Fill<byte>(n, key)),
                GgufValueType.Int8 => new(elementType, Fill<sbyte>(n, key)),
                GgufValueType.UInt16 => new(elementType, Fill<ushort>(n, key)),
                GgufValueType.Int16 => new(elementType, Fill<short>(n, key)),
                GgufValueType.UInt32 => new(elementType, Fill<uint>(n, key)),
                GgufValueType.Int32 => new(elementType, Fill<int>(n, key)),
                GgufValueType.Float32 => new(elementType, Fill<float>(n, key)),
                GgufValueType.UInt64 => new(elementType, Fill<ulong>(n, key)),
                GgufValueType.Int64 => new(elementType, Fill<long>(n, key)),
                GgufValueType.Float64 => new(elementType, Fill<double>(n, key)),
                GgufValueType.Bool => new(elementType, Fill<byte>(n, key).Select(b => b != 0).ToArray()),
                GgufValueType.String => new(elementType, Enumerable.Range(0, (int)n).Select(i => String($"item {i} of '{key}'")).ToArray()),
                GgufValueType.Array => new(elementType, Enumerable.Range(0, (int)n).Select(_ => Array(key, depth + 1)).ToArray()),
                _ => throw new UserInputException($"{file.Path}: array '{key}' has unknown element type {elementType}"),
            };
        }

        private T[] Fill<T>(long n, string key) where T : unmanaged
        {
            byte* p = Take(n * sizeof(T), key);
            return new ReadOnlySpan<T>(p, (int)n).ToArray();
        }
    }
}
