using FinQLoRA.Inference;
using FinQLoRA.Inference.Decoding;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Inference.Decoding;

/// <summary>
/// <see cref="DecodeStep.Choose"/>: the managed single-token step for a Llama inside <see cref="ManagedStepSupport"/>'s
/// set, the libtorch step for anything outside it (an architecture flag it does not compute, another batch, dtype or
/// grad mode), and generation that takes the libtorch step gives the ids it gave before.
/// </summary>
public sealed class DecodeStepTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    private static KvCache Cache(DecoderModel model, int batch = 1, ScalarType? dtype = null) =>
        new(model.Config, batch, 16, dtype ?? model.ComputeDType, CPU);

    [Fact]
    public void ALlamaInsideTheSetTakesTheManagedStep()
    {
        using var model = SeededLlama.Load();
        using var noGrad = no_grad();
        using var cache = Cache(model);
        Assert.Null(ManagedStepSupport.Rejects(model, cache));
        Assert.IsType<ManagedDecodeStep>(DecodeStep.Choose(model, cache));
        Assert.IsType<LibtorchDecodeStep>(DecodeStep.Choose(model, cache, allowManaged: false));
    }

    [Theory]
    [InlineData("attention_bias")]
    [InlineData("mlp_bias")]
    public void AConfigOutsideTheSetTakesTheLibtorchStep(string flag)
    {
        var config = flag == "attention_bias" ? SeededLlama.Stories260KShapes with { QkvBias = true, OutputBias = true } : SeededLlama.Stories260KShapes with { MlpBias = true };
        string folder = SeededLlama.Write(_temp.PathOf(flag), config, SeededLlama.Seed);
        using var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.Float32 });
        Assert.Contains(flag, ManagedStepSupport.Rejects(model.Config));
        Assert.Null(SingleTokenDecoder.TryCreate(model)); // the decoder checks the architecture, not only dtypes and modules
        using var noGrad = no_grad();
        using var cache = Cache(model);
        Assert.IsType<LibtorchDecodeStep>(DecodeStep.Choose(model, cache));

        var generator = new TextGenerator(model, ModelLoading.LoadTokenizer(folder));
        var outputs = generator.Generate(["The little dog"], new GenerationOptions { MaxNewTokens = 6 }, batchSize: 1);
        Assert.True(outputs[0].OutputIds.Length > 1, "no decode step ran");
        Assert.Equal(0, generator.ManagedSteps);
    }

    [Fact]
    public void ThePredicateNamesEachArchitectureOutsideTheSet()
    {
        var llama = SeededLlama.Stories260KShapes;
        Assert.Null(ManagedStepSupport.Rejects(llama));
        Assert.Null(ManagedStepSupport.Rejects(llama with { RopeScaling = new RopeScaling("llama3", 8, 1, 4, 64) }));
        Assert.Contains("attention_bias", ManagedStepSupport.Rejects(llama with { QkvBias = true }));
        Assert.Contains("mlp_bias", ManagedStepSupport.Rejects(llama with { MlpBias = true }));
        Assert.Contains("yarn", ManagedStepSupport.Rejects(llama with { RopeScaling = new RopeScaling("yarn", 8, 1, 4, 64) }));
        Assert.Contains("head_dim", ManagedStepSupport.Rejects(llama with { HeadDim = 7 }));
    }

    [Fact]
    public void ABatchAnFp16ModelACacheOfAnotherDtypeOrGradientsTakeTheLibtorchStep()
    {
        using var model = SeededLlama.Load();
        using (no_grad())
        {
            using var two = Cache(model, batch: 2);
            Assert.IsType<LibtorchDecodeStep>(DecodeStep.Choose(model, two));
            using var bf16Cache = Cache(model, dtype: ScalarType.BFloat16);
            Assert.IsType<LibtorchDecodeStep>(DecodeStep.Choose(model, bf16Cache));
            using var fp16 = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.Float16 });
            using var fp16ModelCache = Cache(fp16);
            Assert.Contains("Float16", ManagedStepSupport.Rejects(fp16));
            Assert.IsType<LibtorchDecodeStep>(DecodeStep.Choose(fp16, fp16ModelCache));
        }
        using var cache = Cache(model);
        Assert.True(is_grad_enabled());
        Assert.IsType<LibtorchDecodeStep>(DecodeStep.Choose(model, cache));
    }

    [Fact]
    public void GreedyIdsAreTheSameWhicheverStepIsChosen()
    {
        using var model = SeededLlama.Load();
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        var options = new GenerationOptions { MaxNewTokens = 24 };
        string[] prompts = ["The little dog", "Once upon a time"];
        var managed = new TextGenerator(model, tokenizer);
        var viaManaged = managed.Generate(prompts, options, batchSize: 1);
        var viaTorch = new TextGenerator(model, tokenizer) { ManagedDecodeStep = false }.Generate(prompts, options, batchSize: 1);
        var batched = new TextGenerator(model, tokenizer).Generate(prompts, options, batchSize: 2);
        Assert.True(managed.ManagedSteps > 0);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(viaTorch[i].OutputIds, viaManaged[i].OutputIds);
            Assert.Equal(viaTorch[i].OutputIds, batched[i].OutputIds);
            Assert.Equal(viaTorch[i], viaManaged[i] with { PromptIds = viaTorch[i].PromptIds, OutputIds = viaTorch[i].OutputIds });
        }
    }
}
