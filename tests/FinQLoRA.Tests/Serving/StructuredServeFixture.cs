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
        string model = SeededChatLlama.Write(Path.Combine(Dir, "model"), seed: 11, SeededChatLlama.Config(maxPositions: 512));
        await StartAsync(new ServerHostOptions
        {
            ModelPath = model, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Server = new ServerOptions { ServedModelName = ModelName, Port = 0 },
            MaxBatch = 8, MaxModelLen = 512,
        });
    }
}
