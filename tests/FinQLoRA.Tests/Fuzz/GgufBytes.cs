using System.Text;

namespace FinQLoRA.Tests.Fuzz;

/// <summary>
/// Writes GGUF v3 bytes field by field, with no checks, so tests can make files a real writer never would
/// (overflowing shapes, overlapping offsets, lengths past the end). Layout as gguf.h: magic, version, tensor count,
/// KV count, KV pairs, tensor infos, padding to 32, data.
/// </summary>
internal sealed class GgufBytes
{
    private readonly List<(string Key, uint Type, byte[] Value)> _kv = new();
    private readonly List<(string Name, ulong[] Ne, uint Type, ulong Offset)> _tensors = new();

    public ulong? TensorCountOverride { get; init; }

    public GgufBytes String(string key, string value)
    {
        _kv.Add((key, 8, [.. BitConverter.GetBytes((ulong)Encoding.UTF8.GetByteCount(value)), .. Encoding.UTF8.GetBytes(value)]));
        return this;
    }

    public GgufBytes U32(string key, uint value)
    {
        _kv.Add((key, 4, BitConverter.GetBytes(value)));
        return this;
    }

    public GgufBytes Tensor(string name, uint ggmlType, ulong offset, params ulong[] ne)
    {
        _tensors.Add((name, ne, ggmlType, offset));
        return this;
    }

    public byte[] Build(int dataBytes)
    {
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms);
        w.Write(0x46554747u);
        w.Write(3u);
        w.Write(TensorCountOverride ?? (ulong)_tensors.Count);
        w.Write((ulong)_kv.Count);
        foreach (var (key, type, value) in _kv)
        {
            WriteString(w, key);
            w.Write(type);
            w.Write(value);
        }
        foreach (var (name, ne, type, offset) in _tensors)
        {
            WriteString(w, name);
            w.Write((uint)ne.Length);
            foreach (ulong n in ne) w.Write(n);
            w.Write(type);
            w.Write(offset);
        }
        while (ms.Length % 32 != 0) w.Write((byte)0);
        w.Write(new byte[dataBytes]);
        return ms.ToArray();
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        w.Write((ulong)Encoding.UTF8.GetByteCount(s));
        w.Write(Encoding.UTF8.GetBytes(s));
    }
}
