using FinQLoRA.Models;

namespace FinQLoRA.Tests.Support;

/// <summary>
/// The tiny Llama the server fixtures serve: the seeded tokenizer with Llama 3's chat tokens and template (no ../shared),
/// so that completions, chat and decisions all answer; untied, because a tied random model repeats its last token.
/// </summary>
public static class SeededChatLlama
{
    public static ModelConfig Config(int maxPositions = 256, int layers = 2) => new()
    {
        HiddenSize = 64, IntermediateSize = 128, NumLayers = layers, NumHeads = 4, NumKvHeads = 2, HeadDim = 16,
        VocabSize = SeededTokenizer.Llama3ChatVocabSize, MaxPositionEmbeddings = maxPositions, TieWordEmbeddings = false,
        BosTokenId = SeededTokenizer.Llama3Bos, EosTokenIds = [SeededTokenizer.Llama3EndOfText, SeededTokenizer.Llama3Eot],
    };

    /// <summary>Writes the tokenizer to <c>tokenizer/</c> beside <paramref name="modelDir"/>, then the model (f32) into
    /// <paramref name="modelDir"/> with <see cref="Config"/>'s shapes unless <paramref name="config"/> gives others.</summary>
    /// <returns><paramref name="modelDir"/></returns>
    public static string Write(string modelDir, long seed, ModelConfig? config = null)
    {
        string tokenizer = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(modelDir))!, "tokenizer");
        SeededTokenizer.Write(tokenizer, llama3Chat: true);
        return SeededLlama.Write(modelDir, config ?? Config(), seed, tokenizerFolder: tokenizer);
    }
}
