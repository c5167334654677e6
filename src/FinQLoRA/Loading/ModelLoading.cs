using FinQLoRA.Data.Tokenization;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Formats.Gguf;
using FinQLoRA.Quantization;
using FinQLoRA.Formats.Tokenizers;

namespace FinQLoRA.Loading;

/// <summary>
/// The loading layer: from a model path to a model, its tokenizer, or both. It sits above Models, Quantization and
/// Data so that none of those needs another: the path is classified once (<see cref="ModelPath"/>), the checkpoint is
/// opened as a reader with HF names (HF folder, shards or GGUF), bitsandbytes-quantized projections are handed to
/// <see cref="ModelLoader"/> as a factory, and a GGUF file's vocabulary becomes a tokenizer in memory.
/// </summary>
public static class ModelLoading
{
    /// <summary>The config and a tensor-by-tensor reader of a checkpoint; the caller disposes the reader.</summary>
    public static (ModelConfig Config, ICheckpointReader Reader) Open(string path) => Open(ModelPath.Classify(path));

    public static (ModelConfig Config, ICheckpointReader Reader) Open(ModelPath path)
    {
        if (path.IsGguf)
        {
            var gguf = new GgufCheckpointReader(path.Checkpoint);
            return (gguf.Config, gguf);
        }
        return (ModelConfig.Load(path.Checkpoint), new HfCheckpointReader(path.Checkpoint));
    }

    /// <summary>Builds the model weight by weight (see <see cref="ModelLoader"/>); the caller disposes it.</summary>
    public static DecoderModel LoadModel(string path, ModelLoadOptions options)
    {
        var (config, reader) = Open(path);
        using (reader) return LoadModel(config, reader, options);
    }

    /// <summary>Builds the model from an open checkpoint, with stored bitsandbytes projections rebuilt as they are.</summary>
    public static DecoderModel LoadModel(ModelConfig config, ICheckpointReader reader, ModelLoadOptions options) =>
        ModelLoader.Load(config, reader, WithStoredQuantization(options));

    /// <summary>The tokenizer of a model path: a folder's tokenizer.json, a tokenizer.json file, or the vocabulary
    /// embedded in a .gguf file.</summary>
    public static ITextTokenizer LoadTokenizer(string path)
    {
        if (!path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) return TokenizerLoader.FromHuggingFace(path);
        using var file = new GgufFile(path);
        var data = GgufTokenizerData.FromGguf(file)
            ?? throw UserInputException.About($"{path}: the GGUF file embeds no tokenizer (no tokenizer.ggml.model); pass {new ConfigField("tokenizer")} with a tokenizer.json");
        var (tokenizer, tokenizerConfig) = HfTokenizerConverter.ToHuggingFaceJson(data, modelMaxLength: (int)(file.GetInteger("llama.context_length") ?? 2048));
        return TokenizerLoader.FromJson(tokenizer, tokenizerConfig, genConfig: null, modelConfig: null, source: path);
    }

    /// <summary>Model and tokenizer together.</summary>
    public static ModelBundle Load(string path, ModelLoadOptions options)
    {
        var modelPath = ModelPath.Classify(path);
        var tokenizer = LoadTokenizer(path); // first: a bad tokenizer fails before minutes of loading
        return new ModelBundle(LoadModel(path, options), tokenizer, modelPath);
    }

    /// <summary>The options with a factory for projections a checkpoint stores quantized (config.json's
    /// quantization_config says bitsandbytes); the loader asks it first for every projection.</summary>
    private static ModelLoadOptions WithStoredQuantization(ModelLoadOptions options) => options with
    {
        StoredProjections = (config, reader) => PrequantizedProjections.For(config, reader, options) is { } stored
            ? (name, shape) => stored.TryLoad(name, shape)
            : null,
    };
}
