using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Server;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving;

/// <summary>
/// A tiny seeded random Llama with the seeded tokenizer's Llama 3 chat variant (SentencePiece with byte fallback, so
/// any byte is a token), served on a free loopback port without a key, for structured outputs: a random model would
/// never write JSON on its own, the hardest case for constrained decoding.
/// </summary>
public sealed class StructuredServeFixture : ServerFixture
{
    public const string ModelName = "tiny-structured";

    public override async Task InitializeAsync()
    {
        var config = new ModelConfig
        {
            HiddenSize = 64, IntermediateSize = 128, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 16,
            VocabSize = SeededTokenizer.Llama3ChatVocabSize, MaxPositionEmbeddings = 512, TieWordEmbeddings = false,
            BosTokenId = SeededTokenizer.Llama3Bos, EosTokenIds = [SeededTokenizer.Llama3EndOfText, SeededTokenizer.Llama3Eot],
        };
        string tokenizer = Path.Combine(Dir, "tokenizer");
        SeededTokenizer.Write(tokenizer, llama3Chat: true);
        string model = SeededLlama.Write(Path.Combine(Dir, "model"), config, seed: 11, tokenizerFolder: tokenizer);
        await StartAsync(new ServerHostOptions
        {
            ModelPath = model, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Server = new ServerOptions { ServedModelName = ModelName, Port = 0 },
            MaxBatch = 8, MaxModelLen = 512,
        });
    }
}
