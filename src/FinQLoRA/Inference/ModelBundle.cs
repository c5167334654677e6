using FinQLoRA.Data.Tokenization;
using FinQLoRA.Models;

namespace FinQLoRA.Inference;

/// <summary>A loaded model with its tokenizer, from an HF folder or a GGUF file.</summary>
public sealed record ModelBundle(LlamaModel Model, ITextTokenizer Tokenizer, string Path) : IDisposable
{
    public static ModelBundle Load(string path, ModelLoadOptions options) =>
        new(ModelLoader.Load(path, options), LoadTokenizer(path), path);

    /// <summary>A folder's tokenizer.json, a tokenizer.json file, or the vocabulary embedded in a .gguf file.</summary>
    public static ITextTokenizer LoadTokenizer(string path) =>
        path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)
            ? GgufTokenizerFactory.FromFile(path)
            : TokenizerLoader.FromHuggingFace(path);

    public void Dispose() => Model.Dispose();
}
