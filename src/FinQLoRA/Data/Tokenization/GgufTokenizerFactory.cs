using FinQLoRA.Models.Gguf;

namespace FinQLoRA.Data.Tokenization;

/// <summary>
/// Builds a tokenizer from the vocabulary embedded in a GGUF file. The embedded data is turned into the equivalent
/// Hugging Face tokenizer files (the conversion that <c>finqlora convert --to hf</c> uses, tested to round-trip
/// exactly) and loaded with <see cref="TokenizerLoader"/>, so GGUF and HF models share one tokenizer path.
/// </summary>
public static class GgufTokenizerFactory
{
    public static ITextTokenizer FromFile(string path)
    {
        using var file = new GgufFile(path);
        var data = GgufTokenizerData.FromGguf(file)
            ?? throw new UserInputException($"{path}: the GGUF file embeds no tokenizer (no tokenizer.ggml.model); pass --tokenizer with a tokenizer.json");
        var folder = Directory.CreateTempSubdirectory("finqlora-gguf-tokenizer-");
        try
        {
            HfTokenizerConverter.WriteHuggingFace(data, folder.FullName, modelMaxLength: (int)(file.GetInteger("llama.context_length") ?? 2048));
            return TokenizerLoader.FromHuggingFace(folder.FullName);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }
}
