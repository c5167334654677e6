namespace FinQLoRA.Data.Tokenization;

/// <summary>Builds a tokenizer from the vocabulary embedded in a GGUF file.</summary>
public static class GgufTokenizerFactory
{
    public static ITextTokenizer FromFile(string path) =>
        throw new UserInputException($"{path}: GGUF tokenizers are not built into this version");
}
