using FinQLoRA.Models;
using FinQLoRA.Models.Families;

namespace FinQLoRA.Demo.RandomModels;

/// <summary>
/// The named shapes of the random models benchmarks build on a device: <c>tiny</c> (a few million parameters, for
/// rehearsals and tests), <c>100m</c> (the training benchmark's CPU model) and <c>8b</c> (Llama 3.1 8B's published
/// config, as the memory planner's preset has it: 32 layers, hidden 4096, FFN 14336, 32/8 heads, vocabulary 128,256).
/// </summary>
public static class RandomModelShapes
{
    public static IReadOnlyList<string> Names { get; } = ["tiny", "100m", "8b"];

    public static ModelConfig Tiny { get; } = new()
    {
        HiddenSize = 256, IntermediateSize = 688, NumLayers = 4, NumHeads = 8, NumKvHeads = 4, HeadDim = 32,
        VocabSize = 4096, MaxPositionEmbeddings = 2048, TieWordEmbeddings = false, BosTokenId = 1, EosTokenIds = [2],
    };

    public static ModelConfig Model100M { get; } = new()
    {
        HiddenSize = 768, IntermediateSize = 2048, NumLayers = 12, NumHeads = 12, NumKvHeads = 4, HeadDim = 64,
        VocabSize = 16000, MaxPositionEmbeddings = 1024, TieWordEmbeddings = false, BosTokenId = 1, EosTokenIds = [2],
    };

    /// <summary>The shape <paramref name="name"/> names; a name that is none is refused, naming the option and the choices.</summary>
    public static ModelConfig Get(string name, string option = "--shape") => name.ToLowerInvariant() switch
    {
        "tiny" => Tiny,
        "100m" => Model100M,
        "8b" => ModelPresets.Get("llama-3.1-8b")!,
        _ => throw new UserInputException($"{option} '{name}' is not one of {string.Join(", ", Names)}"),
    };
}
