using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Formats.Checkpoints;
using TorchSharp;
using FinQLoRA.Formats.Tokenizers;
using FinQLoRA.Models;

namespace FinQLoRA.Formats.Gguf;

/// <summary>
/// Hugging Face model folder ↔ GGUF file, one tensor at a time, for every family (<see cref="GgufArchitectures"/>;
/// <see cref="GgufModelConfig"/> says what each architecture's metadata holds and what is refused). HF → GGUF permutes
/// q/k rows (and biases) into GGUF's interleaved RoPE order where the architecture rotates interleaved, stores Gemma's
/// norms as 1 + w, and embeds the tokenizer; GGUF → HF writes config.json, generation_config.json, safetensors (sharded
/// above <see cref="ShardBytes"/>) and a tokenizer.json rebuilt from the embedded vocabulary.
/// </summary>
public static class ModelConverter
{
    /// <summary>Largest safetensors shard written (HF's default is 5 GB); bounds the memory of a GGUF → HF conversion.</summary>
    public static long ShardBytes { get; set; } = 4L << 30;

    /// <summary>Parses a GGUF dtype option: q8_0, or a compute dtype's spelling (<see cref="Runtime.ComputeDtypes"/>).</summary>
    public static GgmlType ParseDType(string name, string field = "dtype") =>
        name.Trim().Equals("q8_0", StringComparison.OrdinalIgnoreCase) ? GgmlType.Q8_0
        : Runtime.ComputeDtypes.Spellings.TryParse(name, out var dtype) ? Ggml(dtype)
        : throw UserInputException.About($"{new ConfigField(field)} '{name}' is not supported; use f32, f16, bf16 or q8_0");

    private static GgmlType FromTorchDtype(string torchDtype) => TorchDtypeNames.TryParse(torchDtype, out var dtype) ? Ggml(dtype) : GgmlType.F32;

    private static GgmlType Ggml(torch.ScalarType dtype) => dtype switch
    {
        torch.ScalarType.BFloat16 => GgmlType.BF16,
        torch.ScalarType.Float16 => GgmlType.F16,
        _ => GgmlType.F32,
    };

    /// <summary>llama.cpp's <c>general.file_type</c> (<c>llama_ftype</c>) for a model stored mostly as <paramref name="t"/>.</summary>
    private static uint FileType(GgmlType t) => t switch
    {
        GgmlType.F32 => 0,
        GgmlType.F16 => 1,
        GgmlType.Q8_0 => 7,
        GgmlType.BF16 => 32,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>Converts an HF model folder to GGUF. <paramref name="dtype"/> applies to matrices (default: the
    /// checkpoint's torch_dtype); norms stay F32, and a Q8_0 matrix whose rows are not whole blocks falls back to F16,
    /// as llama.cpp's converter does.</summary>
    public static void HfToGguf(string folder, string outFile, GgmlType? dtype = null, bool overwrite = false)
    {
        IO.OutputPlacement.CheckFile(outFile, [folder], overwrite);
        var config = ModelConfig.Load(folder);
        var tokenizer = HfTokenizerConverter.FromHuggingFace(folder, config.VocabSize);
        if (tokenizer.Tokens.Count != config.VocabSize)
            throw new UserInputException($"{folder}: tokenizer.json has {tokenizer.Tokens.Count} tokens but config.json says vocab_size {config.VocabSize}");
        var type = dtype ?? FromTorchDtype(config.TorchDtype);
        using var reader = new HfCheckpointReader(folder);

        var writer = new GgufWriter();
        GgufModelConfig.Write(config, writer); // general.architecture and the {arch}.* keys; refuses what llama.cpp would not run
        writer.Add("general.type", "model");
        writer.Add("general.name", Path.GetFileName(Path.GetFullPath(folder).TrimEnd('/')));
        writer.Add("general.file_type", FileType(type));
        if (type == GgmlType.Q8_0) writer.Add("general.quantization_version", 2u);
        tokenizer.WriteTo(writer);

        foreach (var (name, values) in GgufModelConfig.ConfigTensors(config))
            writer.AddTensor(name, GgmlType.F32, [values.Length], () => torch.tensor(values));
        var layout = ModelLayout.Tensors(config).ToList();
        var names = layout.Select(t => t.HfName).ToHashSet(StringComparer.Ordinal);
        foreach (var e in reader.Entries)
            if (!names.Contains(e.Name) && !e.Name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)
                && !(e.Name == ModelLayout.HeadName && config.TieWordEmbeddings))
                throw new UserInputException($"{folder}: tensor '{e.Name}' is not part of a {config.Family.HfArchitecture} model; GGUF conversion writes the weights of the family's layout only");
        float normOffset = config.Family.GgufNormOffset;
        foreach (var tensor in layout)
        {
            string name = tensor.HfName;
            if (!reader.Contains(name))
                throw new UserInputException($"{folder}: tensor '{name}' is missing from the checkpoint");
            var entry = reader.Entries.First(e => e.Name == name);
            var tensorType = entry.Shape.Length == 1 ? GgmlType.F32
                : type == GgmlType.Q8_0 && entry.Shape[^1] % Q8Zero.BlockSize != 0 ? GgmlType.F16
                : type;
            int? heads = RopeHeads(tensor, config);
            bool offset = normOffset != 0 && IsNorm(tensor);
            writer.AddTensor(tensor.GgufName, tensorType, entry.Shape, () =>
            {
                var t = reader.Read(name);
                // llama.cpp computes Gemma's norms with the stored weight: its converter stores 1 + w, in F32
                if (offset) t = t.to(torch.ScalarType.Float32) + normOffset;
                return heads is int h ? RopePermutation.ToGguf(t, h) : t;
            });
        }
        writer.Write(outFile);
    }

    /// <summary>HF names of a model's weights in llama.cpp's file order (lm_head left out when tied).</summary>
    public static IEnumerable<string> ExpectedTensors(ModelConfig config) => ModelLayout.Tensors(config).Select(t => t.HfName);

    /// <summary>How many heads permute a tensor's rows between HF and GGUF RoPE order: q and k weights and, as
    /// llama.cpp's converter does, their biases, for the architectures llama.cpp rotates interleaved.</summary>
    public static int? RopeHeads(LayoutTensor tensor, ModelConfig config) =>
        tensor.Role is TensorRole.Projection or TensorRole.Bias && tensor.Projection is { } kind ? ModelLayout.RopeHeads(kind, config) : null;

    /// <summary>Whether a tensor is a norm weight (block, per-head q/k, or final), which Gemma's GGUF stores as 1 + w.</summary>
    public static bool IsNorm(LayoutTensor tensor) => tensor.Role is TensorRole.Norm or TensorRole.FinalNorm;

    /// <summary>Converts a GGUF model to an HF folder (the family's config.json). <paramref name="dtype"/> (F32/F16/BF16) defaults to the
    /// stored type of each tensor (Q8_0 becomes F32).</summary>
    public static void GgufToHf(string ggufFile, string outFolder, GgmlType? dtype = null, bool overwrite = false)
    {
        IO.OutputPlacement.CheckFolder(outFolder, [ggufFile], overwrite);
        torch.ScalarType? target = dtype switch
        {
            null => null,
            GgmlType.F32 => torch.ScalarType.Float32,
            GgmlType.F16 => torch.ScalarType.Float16,
            GgmlType.BF16 => torch.ScalarType.BFloat16,
            _ => throw UserInputException.About($"{new ConfigField("dtype")} {dtype} is not a Hugging Face dtype; use f32, f16 or bf16 with {new ConfigField("to")} hf"),
        };
        using var reader = new GgufCheckpointReader(ggufFile);
        var config = reader.Config;
        if (target is { } t) config = config with { TorchDtype = TorchDtypeNames.Name(t) };
        var options = new JsonSerializerOptions { WriteIndented = true };
        IO.AtomicFile.WriteDirectory(outFolder, dir =>
        {
            IO.AtomicFile.WriteAllText(Path.Combine(dir, "config.json"), config.ToJson().ToJsonString(options));
            var generation = new JsonObject();
            if (config.BosTokenId is int bos) generation["bos_token_id"] = bos;
            if (config.EosTokenIds.Count == 1) generation["eos_token_id"] = config.EosTokenIds[0];
            IO.AtomicFile.WriteAllText(Path.Combine(dir, "generation_config.json"), generation.ToJsonString(options));
            WriteSafetensors(reader, dir, target);
            if (reader.Tokenizer is { } tok)
                HfTokenizerConverter.WriteHuggingFace(tok, dir, config.MaxPositionEmbeddings);
        });
    }

    private static void WriteSafetensors(ICheckpointReader reader, string dir, torch.ScalarType? dtype)
    {
        long Bytes(TensorEntry e) => e.ElementCount * SafetensorsDTypes.Size(dtype ?? e.DType);
        var shards = new List<List<TensorEntry>> { new() };
        long current = 0;
        foreach (var e in reader.Entries)
        {
            if (current > 0 && current + Bytes(e) > ShardBytes) { shards.Add(new()); current = 0; }
            shards[^1].Add(e);
            current += Bytes(e);
        }
        var weightMap = new JsonObject();
        for (int s = 0; s < shards.Count; s++)
        {
            string file = shards.Count == 1 ? "model.safetensors" : $"model-{s + 1:D5}-of-{shards.Count:D5}.safetensors";
            using var scope = torch.NewDisposeScope();
            var tensors = shards[s].Select(e => new KeyValuePair<string, torch.Tensor>(e.Name, reader.Read(e.Name, dtype))).ToList();
            SafetensorsFile.Write(Path.Combine(dir, file), tensors, new Dictionary<string, string> { ["format"] = "pt" });
            foreach (var e in shards[s]) weightMap[e.Name] = file;
        }
        if (shards.Count > 1)
        {
            var index = new JsonObject
            {
                ["metadata"] = new JsonObject { ["total_size"] = reader.Entries.Sum(Bytes) },
                ["weight_map"] = weightMap,
            };
            IO.AtomicFile.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
    }
}
