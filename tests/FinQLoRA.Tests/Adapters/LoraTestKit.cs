using FinQLoRA.Adapters;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Adapters;

/// <summary>Shared helpers for the adapter tests: the stories260K model in fp32, fixed prompt ids, and adapters made non-trivial.</summary>
internal static class LoraTestKit
{
    /// <summary>Two prompts of stories260K token ids (BOS = 1), batch [2, 6].</summary>
    public static readonly long[][] PromptIds = [[1, 403, 407, 261, 378, 3], [1, 88, 19, 270, 301, 45]];

    public static LlamaModel LoadStories() =>
        ModelLoader.Load(Shared.File("models/stories260K-hf"), new ModelLoadOptions { DType = ScalarType.Float32 });

    public static Tensor Ids() => tensor(PromptIds.SelectMany(p => p).ToArray(), [PromptIds.Length, PromptIds[0].Length]);

    /// <summary>Logits [B, T, vocab] for <see cref="PromptIds"/>, without a graph.</summary>
    public static Tensor Logits(LlamaModel model)
    {
        using var noGrad = no_grad();
        using var ids = Ids();
        return model.Forward(ids);
    }

    public static double MaxDiff(Tensor a, Tensor b)
    {
        using var d = (a - b).abs().max();
        return d.item<float>();
    }

    /// <summary>Gives every B of the adapter N(0, 0.05²) values (and DoRA magnitudes a ±10% jitter), so that the
    /// adapter changes the output: a fresh adapter (B = 0) would make most comparisons trivially true.</summary>
    public static void Randomize(LlamaModel model, string adapter, long seed)
    {
        using var g = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var w in LoraInjector.Wrapped(model))
        {
            if (!w.Lora.Adapters.TryGetValue(adapter, out var a)) continue;
            using var scope = NewDisposeScope();
            a.B.copy_(randn(a.B.shape, generator: g) * 0.05);
            if (a.Magnitude is not null) a.Magnitude.mul_(1 + 0.1 * randn(a.Magnitude.shape, generator: g));
        }
    }

    public static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "finqlora-lora-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.GetDirectoryName(dir)!);
        return dir;
    }
}
