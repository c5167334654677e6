using FinQLoRA.Loading;
using FinQLoRA.Adapters;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Adapters;

/// <summary>Helpers for the adapter tests: the stories260K model in fp32, fixed prompt ids, and adapters made non-trivial.
/// Tests that need only "a Llama" load <see cref="SeededLlama"/> instead, which has the same shapes.</summary>
internal static class LoraTestKit
{
    /// <summary>Two prompts of stories260K token ids (BOS = 1), batch [2, 6]; valid ids of the seeded model too.</summary>
    public static readonly long[][] PromptIds = [[1, 403, 407, 261, 378, 3], [1, 88, 19, 270, 301, 45]];

    public static DecoderModel LoadStories() =>
        ModelLoading.LoadModel(Shared.File("models/stories260K-hf"), new ModelLoadOptions { DType = ScalarType.Float32 });

    public static Tensor Ids() => tensor(PromptIds.SelectMany(p => p).ToArray(), [PromptIds.Length, PromptIds[0].Length]);

    /// <summary>Logits [B, T, vocab] for <see cref="PromptIds"/> in eval mode (no LoRA dropout), without a graph.</summary>
    public static Tensor Logits(DecoderModel model)
    {
        model.eval();
        using var noGrad = no_grad();
        using var ids = Ids();
        return model.Forward(ids);
    }

    /// <summary>Gives every B of the adapter N(0, 0.05²) values (and DoRA magnitudes a ±10% jitter), so that the
    /// adapter changes the output: a fresh adapter (B = 0) would make most comparisons trivially true.</summary>
    public static void Randomize(DecoderModel model, string adapter, long seed, double scale = 0.05)
    {
        using var g = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var w in LoraInjector.Wrapped(model))
        {
            if (!w.Lora.Adapters.TryGetValue(adapter, out var a)) continue;
            using var scope = NewDisposeScope();
            a.B.copy_(randn(a.B.shape, generator: g) * scale);
            if (a.Magnitude is not null) a.Magnitude.mul_(1 + 0.1 * randn(a.Magnitude.shape, generator: g));
        }
    }
}
