using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;
using FinQLoRA.Runtime;
using TorchSharp;

namespace FinQLoRA.Models.Checkpoints;

/// <summary>
/// One <c>.safetensors</c> file, memory-mapped: a little-endian u64 header length N, N bytes of JSON
/// (<c>name → {dtype, shape, data_offsets}</c>, optional <c>__metadata__</c>), then the data area.
/// We parse it ourselves (a 40-line format) because TorchSharp has no safetensors support and PyBridge reads
/// through streams without mmap. Every offset is checked against the file size before anything is read.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly Dictionary<string, (TensorEntry Entry, long Begin, long End)> _tensors = new();
    private readonly long _dataStart;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IEnumerable<TensorEntry> Entries => _tensors.Values.Select(t => t.Entry);

    public SafetensorsFile(string path)
    {
        Path = path;
        if (!File.Exists(path)) throw new UserInputException($"{path}: file not found");
        long length = new FileInfo(path).Length;
        if (length < 8) throw new UserInputException($"{path}: truncated safetensors file ({length} bytes; the 8-byte header length is missing) — download it again");
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        try
        {
            long headerLength = _view.ReadInt64(0);
            if (headerLength <= 0 || headerLength > length - 8)
                throw new UserInputException($"{path}: header length {headerLength} runs past the end of the file ({length} bytes); the file is truncated or not safetensors — download it again");
            _dataStart = 8 + headerLength;
            var header = new byte[headerLength];
            _view.ReadArray(8, header, 0, header.Length);
            var metadata = new Dictionary<string, string>();
            ParseHeader(header, length - _dataStart, metadata);
            Metadata = metadata;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void ParseHeader(byte[] header, long dataLength, Dictionary<string, string> metadata)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e) { throw new UserInputException($"{Path}: the JSON header is malformed ({e.Message}); the file is damaged — download it again"); }
        using var _ = doc;
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (prop.Name == "__metadata__")
            {
                foreach (var m in prop.Value.EnumerateObject()) metadata[m.Name] = m.Value.GetString() ?? "";
                continue;
            }
            var v = prop.Value;
            var dtype = SafetensorsDTypes.Parse(v.GetProperty("dtype").GetString()!, Path, prop.Name);
            long[] shape = v.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            long[] offsets = v.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var entry = new TensorEntry(prop.Name, dtype, shape);
            long expected = entry.ElementCount * SafetensorsDTypes.Size(dtype);
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataLength)
                throw new UserInputException($"{Path}: tensor '{prop.Name}' has bytes [{string.Join(", ", offsets)}] outside the data area of {dataLength} bytes; the file is truncated — download it again");
            if (offsets[1] - offsets[0] != expected)
                throw new UserInputException($"{Path}: tensor '{prop.Name}' occupies {offsets[1] - offsets[0]} bytes but its shape [{string.Join(", ", shape)}] and dtype need {expected}");
            _tensors[prop.Name] = (entry, offsets[0], offsets[1]);
        }
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public TensorEntry Entry(string name) => _tensors.TryGetValue(name, out var t)
        ? t.Entry
        : throw new UserInputException($"{Path}: tensor '{name}' not found");

    /// <summary>Copies one tensor out of the mapping into a new CPU tensor (one memcpy, no size limit).</summary>
    public unsafe torch.Tensor Read(string name)
    {
        var (entry, begin, end) = _tensors.TryGetValue(name, out var t)
            ? t
            : throw new UserInputException($"{Path}: tensor '{name}' not found");
        var tensor = torch.empty(entry.Shape, entry.DType);
        long bytes = end - begin;
        if (bytes == 0) return tensor;
        byte* basePtr = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePtr);
        try
        {
            byte* src = basePtr + _view.PointerOffset + _dataStart + begin;
            Buffer.MemoryCopy(src, (void*)TensorMemory.DataPointer(tensor), bytes, bytes);
        }
        finally
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
        return tensor;
    }

    public void Dispose()
    {
        _view?.Dispose();
        _map?.Dispose();
    }

    /// <summary>Writes tensors (contiguous CPU copies are made as needed) to a safetensors file, atomically.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.OrderBy(t => t.Key, StringComparer.Ordinal).ToList();
        var layout = new List<(string, torch.ScalarType, long[], long, long)>();
        long offset = 0;
        foreach (var (name, t) in list)
        {
            long bytes = t.numel() * t.element_size();
            layout.Add((name, t.dtype, t.shape, offset, offset + bytes));
            offset += bytes;
        }
        byte[] headerBytes = HeaderBytes(layout, metadata);

        FinQLoRA.IO.AtomicFile.Write(path, stream =>
        {
            stream.Write(BitConverter.GetBytes((long)headerBytes.Length));
            stream.Write(headerBytes);
            foreach (var (_, t) in list)
            {
                using var scope = torch.NewDisposeScope();
                var cpu = t.detach().cpu().contiguous();
                WriteTensorBytes(stream, cpu);
            }
        });
    }

    /// <summary>
    /// The JSON header for tensors laid out as (name, dtype, shape, begin, end) in the data area, padded with spaces
    /// to a multiple of 8 bytes so the data area stays 8-byte aligned, as the reference writer does.
    /// </summary>
    internal static byte[] HeaderBytes(IEnumerable<(string Name, torch.ScalarType DType, long[] Shape, long Begin, long End)> layout,
        IReadOnlyDictionary<string, string>? metadata)
    {
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        foreach (var (name, dtype, shape, begin, end) in layout)
        {
            header[name] = new Dictionary<string, object>
            {
                ["dtype"] = SafetensorsDTypes.Name(dtype),
                ["shape"] = shape,
                ["data_offsets"] = new[] { begin, end },
            };
        }
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        int pad = (8 - json.Length % 8) % 8;
        byte[] headerBytes = new byte[json.Length + pad];
        json.CopyTo(headerBytes, 0);
        for (int i = json.Length; i < headerBytes.Length; i++) headerBytes[i] = (byte)' ';
        return headerBytes;
    }

    internal static unsafe void WriteTensorBytes(Stream stream, torch.Tensor contiguousCpu)
    {
        long total = contiguousCpu.numel() * contiguousCpu.element_size();
        if (total == 0) return;
        byte* p = (byte*)TensorMemory.DataPointer(contiguousCpu);
        const int chunk = 1 << 24;
        for (long done = 0; done < total; done += chunk)
            stream.Write(new ReadOnlySpan<byte>(p + done, (int)Math.Min(chunk, total - done)));
    }

    public static string Describe(TensorEntry e) => $"{e.Name} {SafetensorsDTypes.Name(e.DType)}[{string.Join(",", e.Shape)}]";

    internal static string HeaderText(string path)
    {
        using var f = File.OpenRead(path);
        var lenBytes = new byte[8];
        f.ReadExactly(lenBytes);
        var buf = new byte[BitConverter.ToInt64(lenBytes)];
        f.ReadExactly(buf);
        return Encoding.UTF8.GetString(buf);
    }
}
