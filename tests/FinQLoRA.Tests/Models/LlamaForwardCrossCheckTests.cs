using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>Our forward pass against llama.cpp on the same weights: every prompt position's logits within 1e-4.</summary>
public sealed class LlamaForwardCrossCheckTests
{
    public static readonly string[] Prompts =
    [
        "Once upon a time",
        "The little dog ran to the park and",
        "Lily and Ben were friends. One day they",
        "Tom had a red ball. He",
    ];

    [SharedTheory]
    [InlineData("models/stories260K-hf")]
    [InlineData("models/stories260K/stories260K.gguf")]
    public void OurForwardMatchesLlamaCppOnEveryPosition(string modelPath)
    {
        using var reference = new LlamaCppReference(Shared.File("models/stories260K/stories260K.gguf"));
        using var model = ModelLoading.LoadModel(Shared.File(modelPath), new ModelLoadOptions { DType = ScalarType.Float32 });
        foreach (string prompt in Prompts)
        {
            int[] ids = reference.Tokenize(prompt);
            var (expected, _) = reference.Run(ids, 0);
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var logits = model.Forward(tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0));
            float[] ours = logits.reshape(-1).data<float>().ToArray();
            double maxDiff = 0;
            for (int t = 0; t < ids.Length; t++)
                for (int v = 0; v < expected[t].Length; v++)
                    maxDiff = Math.Max(maxDiff, Math.Abs(ours[t * expected[t].Length + v] - expected[t][v]));
            Assert.True(maxDiff < 1e-4, $"'{prompt}': max |diff| {maxDiff}");
        }
    }
}
