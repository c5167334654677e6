using FinQLoRA.Adapters;
using FinQLoRA.Inference;
using FinQLoRA.Loading;
using FinQLoRA.Quantization.Gemv;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization.Gemv;

/// <summary>Greedy decoding of the seeded Llama quantized to 4 and 8 bits, with and without an adapter, gives the same ids
/// with the fused gemv on and off (<c>FINQLORA_FUSED_GEMV</c>, read per call: the test flips it, so it runs alone).</summary>
[Collection(GlobalRngCollection.Name)]
public sealed class FusedGemvGreedyTests
{
    [Theory]
    [InlineData(4, "fp32")]
    [InlineData(4, "bf16")]
    [InlineData(8, "fp32")]
    [InlineData(8, "bf16")]
    public void GreedyIdsEqualWithTheKernelOnAndOff(int bits, string dtypeName)
    {
        var dtype = dtypeName == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = dtype }.WithBits(bits));
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 16, TargetModules = ["q_proj", "v_proj", "down_proj"] }, 1, "a");
        LoraTestKit.Randomize(model, "a", 1, scale: 0.2);
        model.eval();
        var generator = new TextGenerator(model, ModelLoading.LoadTokenizer(SeededLlama.Folder));
        var prompts = new[] { "Once upon a time", "The cat", "A" };
        var options = new GenerationOptions { MaxNewTokens = 12 };
        List<int[]> Run(string? adapter)
        {
            LoraInjector.SetActiveAdapter(model, adapter);
            return generator.Generate(prompts, options, batchSize: 3).Select(r => r.OutputIds).ToList();
        }
        string? before = Environment.GetEnvironmentVariable(FusedGemv.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, null);
            var fusedBase = Run(null);
            var fusedAdapter = Run("a");
            Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, "off");
            var plainBase = Run(null);
            var plainAdapter = Run("a");
            Assert.Equal(plainBase, fusedBase);
            Assert.Equal(plainAdapter, fusedAdapter);
            Assert.NotEqual(plainBase, plainAdapter); // the adapter changes the ids, so its delta is seen
        }
        finally
        {
            Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, before);
        }
    }
}
