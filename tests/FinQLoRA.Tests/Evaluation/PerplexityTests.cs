using FinQLoRA.Loading;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Evaluation;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Tests.Support;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Evaluation;

public sealed class PerplexityTests(ITestOutputHelper output)
{
    /// <summary>TinyStories-style text written for this test (stories260K was trained on TinyStories).</summary>
    public const string Story =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. " +
        "One day, Lily saw a big red ball under a tree. She ran to the ball and picked it up. " +
        "\"This is a nice ball,\" she said. Her friend Tom came to play with her. They threw the ball to each other and laughed.\n" +
        "Then the sun went down and it was time to go home. Lily said goodbye to Tom and gave him a big hug. " +
        "Her mom made a warm dinner and Lily ate it all. She was very happy.\n" +
        "The next day, Lily and Tom went to the park again. They saw a little dog. The dog was sad because it was lost. " +
        "Lily and Tom helped the dog find its home. The dog's mom was very happy and said thank you. " +
        "Lily and Tom felt proud. They learned that it is good to help others.";

    [Fact]
    public void UniformLogitsScoreTheVocabularySize()
    {
        using var scope = NewDisposeScope();
        var targets = randint(0, 37, [3, 9], generator: new TorchSharp.torch.Generator(1));
        Assert.Equal(37.0, Perplexity.FromLogits(zeros(3, 9, 37), targets), 9);
    }

    [Fact]
    public void ATargetWithHalfTheMassScoresTwo()
    {
        using var scope = NewDisposeScope();
        // logits (ln 3, 0, 0, 0): p(target 0) = 3 / 6 = 0.5 at every position
        var logits = zeros(5, 4);
        logits[.., 0] = tensor(MathF.Log(3));
        Assert.Equal(2.0, Perplexity.FromLogits(logits, zeros(5, ScalarType.Int64)), 5);
    }

    [Fact]
    public void AModelWithAZeroHeadScoresTheVocabularySizeAcrossWindows()
    {
        using var scope = NewDisposeScope();
        var config = new ModelConfig
        {
            HiddenSize = 8, IntermediateSize = 16, NumLayers = 0, NumHeads = 2, NumKvHeads = 1, HeadDim = 4, VocabSize = 23,
            MaxPositionEmbeddings = 64,
        };
        using var model = new DecoderModel(config, ScalarType.Float32, randn(23, 8), [],
            new RmsNorm(ones(8), 1e-5), new DenseLinear(zeros(23, 8)));
        int[] ids = Enumerable.Range(0, 30).Select(i => i * 7 % 23).ToArray();
        Assert.Equal(23.0, Perplexity.Compute(model, ids, window: 4), 9); // 10 windows of 3 predicted tokens
        Assert.Equal(23.0, Perplexity.Compute(model, ids), 9);
        Assert.Throws<UserInputException>(() => Perplexity.Compute(model, [5]));
    }

    [SharedFact]
    public void QuantizedStoriesKeepsItsPerplexityOnAStory()
    {
        string hf = Shared.File("models/stories260K-hf");
        var tokenizer = TokenizerLoader.FromHuggingFace(hf);
        int[] ids = tokenizer.Encode(Story, addBos: true);
        var fp32 = new ModelLoadOptions { DType = ScalarType.Float32 };
        double Ppl(ModelLoadOptions options)
        {
            using var model = ModelLoading.LoadModel(hf, options);
            return Perplexity.Compute(model, ids);
        }
        double full = Ppl(fp32), nf4 = Ppl(fp32.WithBits(4)), int8 = Ppl(fp32.WithBits(8));
        output.WriteLine($"stories260K perplexity on {ids.Length - 1} predicted tokens: fp32 {full:F3}, nf4+dq {nf4:F3} ({nf4 / full - 1:P1}), int8 {int8:F3} ({int8 / full - 1:P1})");
        // a trained model is far from uniform (512) on text of its own domain
        Assert.InRange(full, 1.5, 15);
        // NF4 costs a few percent on this tiny model, LLM.int8() well under one
        Assert.InRange(nf4 / full, 0.98, 1.25);
        Assert.InRange(int8 / full, 0.99, 1.02);
    }
}
