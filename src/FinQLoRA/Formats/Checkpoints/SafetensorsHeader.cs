using System.Buffers;
using System.Text.Json;
using System.Text.Unicode;

namespace FinQLoRA.Formats.Checkpoints;

/// <summary>
/// The JSON header of a <c>.safetensors</c> file, validated as the reference implementation (huggingface/safetensors,
/// <c>Metadata::validate</c>) does before anything is allocated or read: an object of tensor entries (plus an
/// optional string-to-string <c>__metadata__</c>), each an object with a known dtype string, a shape of
/// non-negative integers whose element count and byte size fit in 64 bits, and two integer offsets; the ranges,
/// sorted, must tile the data area exactly — no overlap (two tensors sharing bytes), no gap, nothing after the last.
/// Each problem is a one-line <see cref="UserInputException"/> naming the file and the tensor, where today's
/// alternatives were a <see cref="FormatException"/> from <c>GetInt64</c> or a libtorch error from a negative
/// dimension. Offsets need not be multiples of the element size: the reference reader accepts such files and
/// <see cref="SafetensorsFile"/> reads with positioned reads, which have no alignment needs.
/// </summary>
internal sealed class SafetensorsHeader
{
    private const string MetadataKey = "__metadata__";
    private const string Redownload = "the file is damaged or was not written by a safetensors writer — download or export it again";

    public required IReadOnlyList<(TensorEntry Entry, long Begin, long End)> Tensors { get; init; }
    public required IReadOnlyDictionary<string, string> Metadata { get; init; }

    public static SafetensorsHeader Parse(string path, byte[] header, long dataLength)
    {
        // System.Text.Json parses invalid UTF-8 inside strings and only fails when a name is read
        // (InvalidOperationException, no file named); the reference requires valid UTF-8 up front, and so do we.
        if (Utf8.ToUtf16(header, new char[header.Length], out int valid, out int decoded, replaceInvalidSequences: false) != OperationStatus.Done)
            throw new UserInputException($"{path}: the JSON header is not valid UTF-8 (byte 0x{header[valid]:X2} at header byte {valid}); {Redownload}");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e) { throw new UserInputException($"{path}: the JSON header is malformed ({e.Message.Split('\n')[0]}); {Redownload}"); }
        using var _ = doc;
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw new UserInputException($"{path}: the JSON header is {Article(root.ValueKind)}, not an object of tensors; {Redownload}");

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var tensors = new List<(TensorEntry Entry, long Begin, long End)>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var prop in root.EnumerateObject())
        {
            if (!names.Add(prop.Name))
                throw new UserInputException($"{path}: tensor '{prop.Name}' appears twice in the header; {Redownload}");
            if (prop.Name == MetadataKey) ReadMetadata(path, prop.Value, metadata);
            else tensors.Add(ReadTensor(path, prop.Name, prop.Value, dataLength));
        }
        CheckTiling(path, tensors, dataLength);
        return new SafetensorsHeader { Tensors = tensors, Metadata = metadata };
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new UserInputException($"{path}: '{MetadataKey}' is {Article(value.ValueKind)}, not an object of strings; {Redownload}");
        foreach (var m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String)
                throw new UserInputException($"{path}: '{MetadataKey}' key '{m.Name}' is {Article(m.Value.ValueKind)}; safetensors metadata values are strings — {Redownload}");
            metadata[m.Name] = m.Value.GetString()!;
        }
    }

    private static (TensorEntry, long, long) ReadTensor(string path, string name, JsonElement v, long dataLength)
    {
        string where = $"{path}: tensor '{name}'";
        if (v.ValueKind != JsonValueKind.Object)
            throw new UserInputException($"{where} is {Article(v.ValueKind)}, not an object with dtype, shape and data_offsets; {Redownload}");
        if (!v.TryGetProperty("dtype", out var dtypeNode) || dtypeNode.ValueKind != JsonValueKind.String)
            throw new UserInputException($"{where} has no dtype string; {Redownload}");
        var dtype = SafetensorsDTypes.Parse(dtypeNode.GetString()!, path, name);
        long[] shape = Integers(where, v, "shape", count: null);
        long[] offsets = Integers(where, v, "data_offsets", count: 2);

        long elements = 1;
        foreach (long d in shape)
        {
            if (d < 0)
                throw new UserInputException($"{where} has shape [{string.Join(", ", shape)}] with a negative dimension; {Redownload}");
            if (d != 0 && elements > long.MaxValue / d)
                throw new UserInputException($"{where} has shape [{string.Join(", ", shape)}], more elements than 64 bits can count; {Redownload}");
            elements *= d;
        }
        int size = SafetensorsDTypes.Size(dtype);
        if (elements > long.MaxValue / size)
            throw new UserInputException($"{where} has shape [{string.Join(", ", shape)}] of {SafetensorsDTypes.Name(dtype)}, more bytes than 64 bits can count; {Redownload}");
        long expected = elements * size;

        long begin = offsets[0], end = offsets[1];
        if (end < begin || end > dataLength)
            throw new UserInputException($"{where} has bytes [{begin}, {end}] outside the data area of {dataLength} bytes; the file is truncated or damaged — download it again");
        if (end - begin != expected)
            throw new UserInputException($"{where} occupies {end - begin} bytes but its shape [{string.Join(", ", shape)}] and dtype need {expected}");
        return (new TensorEntry(name, dtype, shape), begin, end);
    }

    /// <summary>An array of JSON integers that fit a non-negative <c>long</c> (2^63 and above, fractions and strings refused).</summary>
    private static long[] Integers(string where, JsonElement v, string key, int? count)
    {
        if (!v.TryGetProperty(key, out var node) || node.ValueKind != JsonValueKind.Array)
            throw new UserInputException($"{where} has no '{key}' array; {Redownload}");
        var values = new List<long>();
        foreach (var item in node.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long n) || n < 0 && key != "shape")
                throw new UserInputException($"{where} has '{key}' [{string.Join(", ", node.EnumerateArray().Select(e => e.GetRawText()))}]: "
                    + $"{item.GetRawText()} is not an integer in [0, 2^63); {Redownload}");
            values.Add(n);
        }
        if (count is int c && values.Count != c)
            throw new UserInputException($"{where} has {values.Count} '{key}' values; it needs {c} ([begin, end]) — {Redownload}");
        return values.ToArray();
    }

    /// <summary>Sorted by offset, the ranges must follow each other from 0 to the end of the data area, as the reference requires.</summary>
    private static void CheckTiling(string path, List<(TensorEntry Entry, long Begin, long End)> tensors, long dataLength)
    {
        long next = 0;
        string? previous = null;
        foreach (var (entry, begin, end) in tensors.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (begin < next)
                throw new UserInputException($"{path}: tensor '{entry.Name}' (bytes [{begin}, {end})) overlaps tensor '{previous}' (which ends at {next}); {Redownload}");
            if (begin > next)
                throw new UserInputException($"{path}: tensor '{entry.Name}' starts at byte {begin} of the data area, but {(previous is null ? "the data area starts at byte 0" : $"tensor '{previous}' ends at {next}")}; safetensors tensors follow each other without gaps — {Redownload}");
            next = end;
            previous = entry.Name;
        }
        if (next != dataLength)
            throw new UserInputException($"{path}: the data area holds {dataLength} bytes but its tensors end at byte {next}{(previous is null ? "" : $" (after '{previous}')")}; {Redownload}");
    }

    private static string Article(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };
}
