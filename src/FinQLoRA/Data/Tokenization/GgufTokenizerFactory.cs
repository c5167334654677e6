using FinQLoRA.Models.Gguf;

namespace FinQLoRA.Data.Tokenization;

/// <summary>Builds a tokenizer from the vocabulary embedded in a GGUF file.</summary>
public static class GgufTokenizerFactory
{
    /// <summary>
    /// Writes the GGUF vocabulary as a Hugging Face tokenizer.json (<see cref="HfTokenizerConverter"/>, the same
    /// conversion <c>finqlora convert --to hf</c> uses) into a scratch folder and loads that, so GGUF and HF models
    /// share one tokenizer implementation.
    /// </summary>
    public static ITextTokenizer FromFile(string path)
    {
        GgufTokenizerData data;
        int maxLength;
        using (var reader = new GgufCheckpointReader(path))
        {
            data = reader.Tokenizer ?? throw new UserInputException($"{path}: the GGUF file carries no tokenizer (tokenizer.ggml.*); pass a tokenizer.json next to it or use the HF folder");
            maxLength = reader.Config.MaxPositionEmbeddings;
        }
        var scratch = Directory.CreateTempSubdirectory("finqlora-gguf-tokenizer-");
        try
        {
            HfTokenizerConverter.WriteHuggingFace(data, scratch.FullName, maxLength);
            return TokenizerLoader.FromHuggingFace(scratch.FullName);
        }
        finally
        {
            scratch.Delete(recursive: true);
        }
    }
}
