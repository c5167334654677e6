using FinQLoRA.Loading;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>Greedy generation against llama.cpp: identical 32-token continuations, batched (left padding) and alone.</summary>
public sealed class GenerationCrossCheckTests
{
    [SharedTheory]
    [InlineData("models/stories260K-hf")]
    [InlineData("models/stories260K/stories260K.gguf")]
    public void GreedyContinuationsMatchLlamaCppBatchedAndAlone(string modelPath)
    {
        using var reference = new LlamaCppReference(Shared.File("models/stories260K/stories260K.gguf"));
        string path = Shared.File(modelPath);
        using var model = ModelLoading.LoadModel(path, new ModelLoadOptions { DType = ScalarType.Float32 });
        var tokenizer = ModelLoading.LoadTokenizer(path);
        var generator = new TextGenerator(model, tokenizer);
        var prompts = LlamaForwardCrossCheckTests.Prompts;
        var options = new GenerationOptions { MaxNewTokens = 32, StopIds = [-1] };

        var expected = prompts.Select(p =>
        {
            int[] ids = reference.Tokenize(p);
            Assert.Equal(ids, tokenizer.Encode(p, addBos: true)); // our tokenizer agrees with llama.cpp's
            var greedy = reference.Run(ids, 32).Greedy;
            int stop = Array.FindIndex(greedy, t => tokenizer.EosIds.Contains(t));
            return stop < 0 ? greedy : greedy[..stop];
        }).ToArray();

        var batched = generator.Generate(prompts, options, batchSize: prompts.Length);
        var alone = generator.Generate(prompts, options, batchSize: 1);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(expected[i], batched[i].OutputIds);
            Assert.Equal(expected[i], alone[i].OutputIds);
        }
        Assert.StartsWith(", there was a little girl named Lily", batched[0].Text);
    }

    [SharedFact]
    public void SamplingWithASeedIsReproducibleAndStopStringsCut()
    {
        string hf = Shared.File("models/stories260K-hf");
        using var model = ModelLoading.LoadModel(hf, new ModelLoadOptions { DType = ScalarType.Float32 });
        var generator = new TextGenerator(model, TokenizerLoader.FromHuggingFace(hf));
        var sampling = new GenerationOptions { MaxNewTokens = 24, Temperature = 0.9, TopK = 40, TopP = 0.9, Seed = 7 };
        var a = generator.Generate(["Once upon a time"], sampling);
        var b = generator.Generate(["Once upon a time"], sampling);
        var c = generator.Generate(["Once upon a time"], sampling with { Seed = 8 });
        Assert.Equal(a[0].OutputIds, b[0].OutputIds);
        Assert.NotEqual(a[0].OutputIds, c[0].OutputIds);

        var cut = generator.Generate(["Once upon a time"], new GenerationOptions { MaxNewTokens = 32, StopStrings = ["Lily"] });
        Assert.Equal(", there was a little girl named ", cut[0].Text);
        Assert.Equal(FinishReason.AtString("Lily"), cut[0].FinishReason);
    }

    [Fact]
    public void PromptLongerThanTheContextIsAClearError()
    {
        string hf = SeededLlama.Folder; // a context of 512, as stories260K's
        using var model = ModelLoading.LoadModel(hf, new ModelLoadOptions { DType = ScalarType.Float32 });
        var generator = new TextGenerator(model, TokenizerLoader.FromHuggingFace(hf));
        var e = Assert.Throws<UserInputException>(() => generator.Generate([string.Concat(Enumerable.Repeat("Once upon a time ", 200))], new GenerationOptions()));
        Assert.Contains("exceeds the model's context of 512", e.Message);
    }
}
