using TorchSharp;

namespace FinQLoRA.Formats.Checkpoints;

/// <summary>
/// Writes a <c>.safetensors</c> file one tensor at a time, so a caller can produce, add and free each tensor and
/// never hold the whole checkpoint. The header must come first but lists every shape, and some shapes are only known
/// once a tensor exists (a bitsandbytes quant state is JSON whose length depends on the data), so tensor bytes go to
/// a spill file beside the target as they arrive; <see cref="Commit"/> then writes header + spilled bytes to the
/// target atomically. Memory stays at one tensor; the disk briefly holds the data twice.
/// Tensors are stored in the order added (readers locate them by offset, so order does not matter).
/// </summary>
public sealed class SafetensorsStreamWriter : IDisposable
{
    private readonly string _path;
    private readonly IReadOnlyDictionary<string, string>? _metadata;
    private readonly FileStream _spill;
    private readonly List<(string Name, torch.ScalarType DType, long[] Shape, long Begin, long End)> _layout = new();
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private bool _committed;

    public SafetensorsStreamWriter(string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        _path = Path.GetFullPath(path);
        _metadata = metadata;
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        // DeleteOnClose: the spill file disappears when the writer is disposed, committed or not.
        _spill = new FileStream($"{_path}.{Environment.ProcessId}.{Guid.NewGuid():N}.spill", FileMode.CreateNew,
            FileAccess.ReadWrite, FileShare.None, 1 << 20, FileOptions.DeleteOnClose);
    }

    /// <summary>Bytes of tensor data added so far.</summary>
    public long DataBytes => _spill.Length;

    public int Count => _layout.Count;

    /// <summary>Appends one tensor's bytes (a contiguous CPU copy is made if needed); the caller still owns and disposes it.</summary>
    public void Add(string name, torch.Tensor tensor)
    {
        if (_committed) throw new InvalidOperationException("the safetensors file was already committed");
        if (!_names.Add(name)) throw new ArgumentException($"tensor '{name}' was already added", nameof(name));
        using var scope = torch.NewDisposeScope();
        var cpu = tensor.detach().cpu().contiguous();
        long begin = _spill.Length;
        SafetensorsFile.WriteTensorBytes(_spill, cpu);
        long end = _spill.Position;
        long expected = cpu.numel() * cpu.element_size();
        if (end - begin != expected)
            throw new IOException($"{_path}: wrote {end - begin} bytes for tensor '{name}' but it holds {expected}");
        _layout.Add((name, tensor.dtype, tensor.shape, begin, end));
    }

    /// <summary>Writes the header and the spilled data to the target file (temp name, then rename).</summary>
    public void Commit()
    {
        if (_committed) throw new InvalidOperationException("the safetensors file was already committed");
        _committed = true;
        byte[] header = SafetensorsFile.HeaderBytes(_layout, _metadata);
        _spill.Flush();
        FinQLoRA.IO.AtomicFile.Write(_path, stream =>
        {
            stream.Write(BitConverter.GetBytes((long)header.Length));
            stream.Write(header);
            _spill.Position = 0;
            _spill.CopyTo(stream, 1 << 22);
        });
    }

    public void Dispose() => _spill.Dispose();
}
