using FinQLoRA.Inference;
using FinQLoRA.Inference.Decoding;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Inference.Decoding;

/// <summary>Every family's quirky model is outside the managed step's set, for a named reason, and generates through the
/// libtorch step with the ids of the plain forward's argmax; a Llama 3.2-shaped model without biases (tied head,
/// llama3 RoPE) stays inside it.</summary>
public sealed class FamilyDecodeStepTests
{
    [Theory]
    [MemberData(nameof(SeededFamilies.Names), MemberType = typeof(SeededFamilies))]
    public void AQuirkyFamilyTakesTheLibtorchStepAndGeneratesTheForwardsArgmax(string family)
    {
        using var dir = new TempFolder();
        string folder = SeededFamilies.Write(dir.Path, family);
        using var model = SeededFamilies.Load(folder);
        Assert.NotNull(ManagedStepSupport.Rejects(model.Config));
        Assert.Null(SingleTokenDecoder.TryCreate(model));
        using (no_grad())
        {
            using var cache = new KvCache(model.Config, 1, 16, ScalarType.Float32, CPU);
            Assert.IsType<LibtorchDecodeStep>(DecodeStep.Choose(model, cache));
        }

        var generator = new TextGenerator(model, ModelLoading.LoadTokenizer(folder));
        var output = generator.Generate(["the cat sat on the mat"], new GenerationOptions { MaxNewTokens = 12 }, batchSize: 1)[0];
        Assert.Equal(0, generator.ManagedSteps);
        // greedy ids, recomputed with one full forward per token (no cache, no decode step): the same
        using var noGrad = no_grad();
        var ids = output.PromptIds.Select(i => (long)i).ToList();
        foreach (int expected in output.OutputIds.Where(i => !model.Config.EosTokenIds.Contains(i)))
        {
            using var scope = NewDisposeScope();
            var logits = model.Forward(tensor(ids.ToArray()).unsqueeze(0));
            Assert.Equal(expected, (int)logits[0, -1].argmax().item<long>());
            ids.Add(expected);
        }
    }

    [Fact]
    public void ALlama32ShapedModelWithoutBiasesStaysInside()
    {
        var config = SeededFamilies.Config("llama3.2") with { QkvBias = false, OutputBias = false };
        Assert.Null(ManagedStepSupport.Rejects(config));
        Assert.Contains("sliding-window", ManagedStepSupport.Rejects(SeededFamilies.Config("mistral")));
        Assert.Contains("q/k norms", ManagedStepSupport.Rejects(SeededFamilies.Config("qwen3") with { QkvBias = false, OutputBias = false }));
        Assert.Contains("fused", ManagedStepSupport.Rejects(SeededFamilies.Config("phi3") with { QkvBias = false, OutputBias = false }));
    }
}
