using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>
/// Training attention passes scaled_dot_product_attention's causal flag instead of the mask where the mask is the plain
/// causal one (issue 26). The fact travels with the mask object (<see cref="AttentionMask.IsPlainCausal"/>), never read
/// from its values; the step with the flag must give the loss and adapter gradients of the explicit mask.
/// </summary>
public sealed class CausalFlagAttentionTests
{
    [Fact]
    public void OnlyMasksBuiltAsThePlainCausalOneCarryTheMark()
    {
        using var scope = NewDisposeScope();
        var causal = AttentionMask.Build(null, 2, 5, 0, CPU);
        Assert.True(AttentionMask.IsPlainCausal(causal));
        Assert.True(AttentionMask.IsPlainCausal(AttentionMask.To(causal, ScalarType.BFloat16)), "a cast through To keeps the mark");
        Assert.False(AttentionMask.IsPlainCausal(causal.to(ScalarType.BFloat16)), "a plain cast is another tensor, unmarked");

        // the same values from a padding mask of ones: not marked, because the mark is not guessed from values
        var samePadded = AttentionMask.Build(ones([2, 5], ScalarType.Int64), 2, 5, 0, CPU);
        TensorAssert.Equal(causal, samePadded, "mask values");
        Assert.False(AttentionMask.IsPlainCausal(samePadded));
        Assert.False(AttentionMask.IsPlainCausal(AttentionMask.Build(null, 2, 5, 3, CPU)), "past > 0: the flag would align the wrong corner");
        Assert.False(AttentionMask.IsPlainCausal(AttentionMask.SlidingWindow(causal, 2)));
        Assert.False(AttentionMask.IsPlainCausal(AttentionMask.Packed(tensor(new long[] { 1, 1, 2, 2, 2 }).view(1, 5))));
        var saved = causal.clone();
        Assert.False(AttentionMask.IsPlainCausal(saved));
        Assert.True(AttentionMask.IsPlainCausal(AttentionMask.MarkPlainCausal(saved)));
    }

    [Theory]
    [InlineData(16, false)]
    [InlineData(4, false)]
    [InlineData(16, true)]
    public void ATrainingStepWithTheCausalFlagGivesTheLossAndGradientsOfTheExplicitMask(int bits, bool checkpointing)
    {
        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.BFloat16 }.WithBits(bits));
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, Dropout = 0, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj"] }, seed: 3);
        LoraTestKit.Randomize(model, LoraLinear.DefaultAdapter, seed: 5);
        model.train();
        model.GradientCheckpointing = checkpointing;
        var parameters = LoraInjector.AdapterParameters(model).Select(p => p.P).ToList();
        using var ids = randint(3, SeededLlama.Stories260KShapes.VocabSize, [2, 12], generator: new Generator(9));

        (float Loss, Tensor[] Grads) Step(Tensor? padMask)
        {
            foreach (var p in parameters) p.grad?.zero_();
            using var scope = NewDisposeScope();
            var logits = model.Forward(ids, padMask); // no padding mask: the plain causal mask, marked
            var loss = nn.functional.cross_entropy(logits.narrow(1, 0, 11).reshape(-1, logits.shape[2]), ids.narrow(1, 1, 11).reshape(-1));
            loss.backward();
            return (loss.item<float>(), parameters.Select(p => p.grad!.clone().MoveToOuterDisposeScope()).ToArray());
        }

        var (flagLoss, flagGrads) = Step(null);
        using var allReal = ones([2, 12], ScalarType.Int64); // the same mask values, built from padding: unmarked
        var (maskLoss, maskGrads) = Step(allReal);
        Assert.True(Math.Abs(flagLoss - maskLoss) <= 2e-3 * Math.Abs(maskLoss), $"loss {flagLoss} with the causal flag, {maskLoss} with the mask");
        for (int i = 0; i < parameters.Count; i++)
        {
            double scale = TensorAssert.MaxAbs(maskGrads[i]);
            Assert.True(scale > 0, $"adapter gradient {i} is zero: the check would pass vacuously");
            TensorAssert.MaxDiffAtMost(maskGrads[i], flagGrads[i], scale / 16, $"adapter gradient {i}");
        }
    }
}
