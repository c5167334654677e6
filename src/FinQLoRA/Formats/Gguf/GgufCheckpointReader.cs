using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Runtime;
using TorchSharp;
using FinQLoRA.Models;

namespace FinQLoRA.Formats.Gguf;

/// <summary>
/// A GGUF model of any family (<see cref="GgufArchitectures"/>) read as if it were a Hugging Face checkpoint: HF tensor
/// names, PyTorch shapes (the reverse of ggml's ne), q/k rows and biases permuted from GGUF's interleaved RoPE order into
/// HF's rotate-half order where the architecture rotates interleaved, Gemma's stored 1 + w norms given back as w, Q8_0
/// dequantized to F32 (F32/F16/BF16 come as stored). The config and the embedded tokenizer come from the metadata.
/// </summary>
public sealed class GgufCheckpointReader : ICheckpointReader
{
    private readonly GgufFile _file;
    private readonly Dictionary<string, GgufTensorInfo> _byHfName = new(StringComparer.Ordinal);
    private readonly Dictionary<string, LayoutTensor> _layout = new(StringComparer.Ordinal);
    private MappedTensorFile? _mapped;

    public string Source => _file.Path;
    public IReadOnlyList<TensorEntry> Entries { get; }
    public ModelConfig Config { get; }
    /// <summary>The embedded tokenizer, or null when the file has none.</summary>
    public GgufTokenizerData? Tokenizer { get; }
    public GgufFile File => _file;

    public GgufCheckpointReader(string path)
    {
        _file = new GgufFile(path);
        try
        {
            Tokenizer = GgufTokenizerData.FromGguf(_file);
            Config = GgufModelConfig.Read(_file, Tokenizer);
            var byGguf = ModelLayout.Tensors(Config).ToDictionary(t => t.GgufName, StringComparer.Ordinal);
            var entries = new List<TensorEntry>();
            foreach (var t in _file.Tensors)
            {
                if (GgufModelConfig.IsConfigTensor(t.Name)) continue; // folded into Config.RopeScaling
                var layout = byGguf.GetValueOrDefault(t.Name)
                    ?? throw new UserInputException($"{path}: tensor '{t.Name}' is not a weight of a {Config.Family.HfArchitecture} model as FinQLoRA reads it ({_file.GetString("general.architecture")} architecture); the file has tensors this family does not");
                string hf = layout.HfName;
                _layout[hf] = layout;
                if (!GgmlTypes.IsReadable(t.Type))
                    throw new UserInputException($"{path}: tensor '{t.Name}' is {t.Type}; FinQLoRA reads F32, F16, BF16 and Q8_0 GGUF files — requantize with llama-quantize (e.g. to Q8_0) or convert from the HF model");
                _byHfName[hf] = t;
                entries.Add(new TensorEntry(hf, DTypeOf(t.Type), t.TorchShape));
            }
            Entries = entries.OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    private static torch.ScalarType DTypeOf(GgmlType type) => type switch
    {
        GgmlType.F16 => torch.ScalarType.Float16,
        GgmlType.BF16 => torch.ScalarType.BFloat16,
        _ => torch.ScalarType.Float32, // F32, and Q8_0 dequantized
    };

    public bool Contains(string name) => _byHfName.ContainsKey(name);

    public unsafe torch.Tensor Read(string name, torch.ScalarType? dtype = null)
    {
        if (!_byHfName.TryGetValue(name, out var info))
            throw new UserInputException($"{Source}: tensor '{name}' is missing from the GGUF file");
        var raw = torch.empty(info.TorchShape, DTypeOf(info.Type));
        byte* src = _file.Data(info);
        if (info.Type == GgmlType.Q8_0)
        {
            float* dst = (float*)TensorMemory.DataPointer(raw);
            long blocks = info.ByteCount / Q8Zero.BlockBytes;
            const int chunk = 1 << 16;
            for (long b = 0; b < blocks; b += chunk)
            {
                int n = (int)Math.Min(chunk, blocks - b);
                Q8Zero.Dequantize(new ReadOnlySpan<byte>(src + b * Q8Zero.BlockBytes, n * Q8Zero.BlockBytes),
                    new Span<float>(dst + b * Q8Zero.BlockSize, n * Q8Zero.BlockSize));
            }
        }
        else
        {
            Buffer.MemoryCopy(src, (void*)TensorMemory.DataPointer(raw), info.ByteCount, info.ByteCount);
        }

        var result = raw;
        var layout = _layout[name];
        if (ModelConverter.RopeHeads(layout, Config) is int heads)
        {
            result = RopePermutation.ToHf(raw, heads);
            raw.Dispose();
        }
        if (Config.Family.GgufNormOffset != 0 && ModelConverter.IsNorm(layout))
        {
            // stored as 1 + w (llama.cpp's converter); F32, so w comes back within an f32 rounding of 1 + w
            using var stored = result;
            result = stored - Config.Family.GgufNormOffset;
        }
        if (dtype is { } d && result.dtype != d)
        {
            var converted = result.to(d);
            result.Dispose();
            result = converted;
        }
        return result;
    }

    /// <summary>
    /// A view of the file (<see cref="MappedTensorFile"/>) for a tensor HF reads exactly as GGUF stores it — F32, F16
    /// or BF16, no RoPE row permutation, no Gemma norm offset (ggml's ne reversed is the same row-major layout);
    /// otherwise the converted copy <see cref="Read"/> makes.
    /// </summary>
    public torch.Tensor ReadShared(string name)
    {
        if (!_byHfName.TryGetValue(name, out var info))
            throw new UserInputException($"{Source}: tensor '{name}' is missing from the GGUF file");
        var layout = _layout[name];
        bool asStored = info.Type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16
            && ModelConverter.RopeHeads(layout, Config) is null
            && !(Config.Family.GgufNormOffset != 0 && ModelConverter.IsNorm(layout));
        if (asStored)
        {
            _mapped ??= new MappedTensorFile(Source, _file.Length);
            if (_mapped.TryView(_file.DataOffset + info.Offset, info.TorchShape, DTypeOf(info.Type)) is { } view) return view;
        }
        return Read(name);
    }

    public void Dispose()
    {
        _mapped?.Dispose();
        _file.Dispose();
    }
}
