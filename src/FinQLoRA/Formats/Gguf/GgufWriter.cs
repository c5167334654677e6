using System.Text;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Runtime;
using TorchSharp;

namespace FinQLoRA.Formats.Gguf;

/// <summary>
/// Writes a GGUF v3 file: KV pairs, then tensors converted to F32, F16, BF16 or Q8_0, each starting at a multiple of
/// 32 bytes. Tensors are produced lazily by a callback and released right after their bytes are written, so a whole
/// model never sits in memory; the file appears atomically when complete.
/// </summary>
public sealed class GgufWriter
{
    private readonly List<KeyValuePair<string, object>> _kv = new();
    private readonly List<Pending> _tensors = new();

    private sealed record Pending(string Name, GgmlType Type, long[] Ne, long ByteCount, Func<torch.Tensor> Source);

    public int Alignment => GgufFile.DefaultAlignment;

    /// <summary>Adds a KV pair. <paramref name="value"/> is a CLR scalar (byte … double, bool, string), a
    /// <c>string[]</c>/<c>float[]</c>/<c>int[]</c>/… array or a <see cref="GgufArray"/>.</summary>
    public void Add(string key, object value)
    {
        if (_kv.Any(kv => kv.Key == key)) throw new ArgumentException($"GGUF key '{key}' added twice");
        ValueTypeOf(value); // fail now, not at write time
        _kv.Add(new(key, value));
    }

    /// <summary>Adds a tensor of PyTorch shape <paramref name="torchShape"/> that <paramref name="source"/> produces
    /// (any dtype, CPU) when the file is written; the writer disposes what it returns.</summary>
    public void AddTensor(string name, GgmlType type, long[] torchShape, Func<torch.Tensor> source)
    {
        if (type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0))
            throw new ArgumentException($"tensor '{name}': writing {type} is not supported (F32, F16, BF16, Q8_0)");
        if (_tensors.Any(t => t.Name == name)) throw new ArgumentException($"tensor '{name}' added twice");
        long[] ne = torchShape.Reverse().ToArray();
        if (ne.Length == 0) ne = [1];
        long bytes = GgmlTypes.ByteCount(type, ne)
            ?? throw new ArgumentException($"tensor '{name}': {type} needs the last dimension to be a multiple of {GgmlTypes.Geometry(type).BlockSize}, got shape [{string.Join(", ", torchShape)}]");
        _tensors.Add(new Pending(name, type, ne, bytes, source));
    }

    /// <summary>Adds an existing tensor (the caller keeps ownership).</summary>
    public void AddTensor(string name, GgmlType type, torch.Tensor tensor) =>
        AddTensor(name, type, tensor.shape, () => tensor.alias());

    public void Write(string path) => IO.AtomicFile.Write(path, WriteTo);

    private void WriteTo(Stream stream)
    {
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(GgufFile.Magic);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_kv.Count);
        foreach (var (key, value) in _kv)
        {
            WriteString(w, key);
            var type = ValueTypeOf(value);
            w.Write((uint)type);
            WriteValue(w, type, value);
        }
        long offset = 0;
        foreach (var t in _tensors)
        {
            WriteString(w, t.Name);
            w.Write((uint)t.Ne.Length);
            foreach (long n in t.Ne) w.Write((ulong)n);
            w.Write((uint)t.Type);
            w.Write((ulong)offset);
            offset = GgufFile.Align(offset + t.ByteCount, Alignment);
        }
        w.Flush();
        Pad(stream);
        foreach (var t in _tensors)
        {
            WriteTensor(stream, t);
            Pad(stream);
        }
    }

    private void Pad(Stream stream)
    {
        long pad = GgufFile.Align(stream.Position, Alignment) - stream.Position;
        if (pad > 0) stream.Write(new byte[pad]);
    }

    private static void WriteTensor(Stream stream, Pending t)
    {
        using var scope = torch.NewDisposeScope();
        var source = t.Source();
        long expected = t.Ne.Aggregate(1L, (a, b) => a * b);
        if (source.numel() != expected)
            throw new InvalidOperationException($"tensor '{t.Name}' produced {source.numel()} values, its shape needs {expected}");
        source = source.cpu();
        long before = stream.Position;
        switch (t.Type)
        {
            case GgmlType.F32: SafetensorsFile.WriteTensorBytes(stream, source.to(torch.ScalarType.Float32).contiguous()); break;
            case GgmlType.F16: SafetensorsFile.WriteTensorBytes(stream, source.to(torch.ScalarType.Float16).contiguous()); break;
            case GgmlType.BF16: SafetensorsFile.WriteTensorBytes(stream, source.to(torch.ScalarType.BFloat16).contiguous()); break;
            case GgmlType.Q8_0: WriteQ8(stream, source.to(torch.ScalarType.Float32).contiguous()); break;
        }
        if (stream.Position - before != t.ByteCount)
            throw new InvalidOperationException($"tensor '{t.Name}': wrote {stream.Position - before} bytes, header says {t.ByteCount}");
    }

    private static unsafe void WriteQ8(Stream stream, torch.Tensor f32)
    {
        float* p = (float*)TensorMemory.DataPointer(f32);
        long n = f32.numel();
        const int chunkBlocks = 1 << 16;
        var buffer = new byte[chunkBlocks * Q8Zero.BlockBytes];
        for (long done = 0; done < n; done += (long)chunkBlocks * Q8Zero.BlockSize)
        {
            int values = (int)Math.Min((long)chunkBlocks * Q8Zero.BlockSize, n - done);
            var outBytes = buffer.AsSpan(0, values / Q8Zero.BlockSize * Q8Zero.BlockBytes);
            Q8Zero.Quantize(new ReadOnlySpan<float>(p + done, values), outBytes);
            stream.Write(outBytes);
        }
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static GgufValueType ValueTypeOf(object value) => value switch
    {
        byte => GgufValueType.UInt8,
        sbyte => GgufValueType.Int8,
        ushort => GgufValueType.UInt16,
        short => GgufValueType.Int16,
        uint => GgufValueType.UInt32,
        int => GgufValueType.Int32,
        float => GgufValueType.Float32,
        bool => GgufValueType.Bool,
        string => GgufValueType.String,
        ulong => GgufValueType.UInt64,
        long => GgufValueType.Int64,
        double => GgufValueType.Float64,
        GgufArray or Array => GgufValueType.Array,
        _ => throw new ArgumentException($"cannot store a {value.GetType().Name} in GGUF metadata"),
    };

    private static GgufArray AsArray(object value) => value switch
    {
        GgufArray a => a,
        Array a => new GgufArray(ValueTypeOf(a.GetType().GetElementType() switch
        {
            var t when t == typeof(string) => "",
            var t when t == typeof(GgufArray) => new GgufArray(GgufValueType.UInt8, Array.Empty<byte>()),
            var t => Activator.CreateInstance(t!)!,
        }), a),
        _ => throw new ArgumentException("not an array"),
    };

    private static void WriteValue(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write((byte)value); break;
            case GgufValueType.Int8: w.Write((sbyte)value); break;
            case GgufValueType.UInt16: w.Write((ushort)value); break;
            case GgufValueType.Int16: w.Write((short)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Bool: w.Write((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt64: w.Write((ulong)value); break;
            case GgufValueType.Int64: w.Write((long)value); break;
            case GgufValueType.Float64: w.Write((double)value); break;
            case GgufValueType.Array:
                var array = AsArray(value);
                w.Write((uint)array.ElementType);
                w.Write((ulong)array.Items.Length);
                foreach (object item in array.Items) WriteValue(w, array.ElementType, item);
                break;
        }
    }
}
