using FinQLoRA.Adapters;
using FinQLoRA.Data.Sft;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Training;

/// <summary>Logits only where the loss is: the same loss and adapter gradients as the full [B, T, vocab] computation.</summary>
public sealed class SupervisedLossTests
{
    [Fact]
    public void GatheringTargetPositionsGivesTheFullComputationsLossAndGradients()
    {
        using var model = SeededLlama.Load();
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = [LoraTargets.AllLinear] }, seed: 3);
        LoraTestKit.Randomize(model, LoraLinear.DefaultAdapter, seed: 5);
        model.eval(); // no dropout: both passes see the same function
        // right-padded batch of different lengths, targets of 1–3 tokens as in classification, one row with none
        var examples = new List<TokenizedExample>
        {
            new([1, 403, 407, 261, 378, 3, 90], [-100, -100, -100, -100, -100, 3, 90]),
            new([1, 88, 19, 270], [-100, -100, -100, 270]),
            new([1, 88, 19, 270, 301, 45, 12, 7, 9], [-100, -100, -100, -100, -100, -100, 12, 7, 9]),
            new([1, 5, 6], [-100, -100, -100]),
        };
        using var batch = SftCollator.Collate(examples, padId: 2, CPU);
        var parameters = LoraInjector.AdapterParameters(model).Select(p => p.P).ToList();

        (float Loss, float[][] Grads) Run(Func<Tensor> loss)
        {
            foreach (var p in parameters) p.grad?.zero_();
            using var scope = NewDisposeScope();
            var l = loss();
            l.backward();
            return (l.item<float>(), parameters.Select(p => p.grad!.data<float>().ToArray()).ToArray());
        }
        var full = Run(() => SupervisedLoss.TokenLoss(model.Forward(batch.InputIds, batch.PadMask), batch.Labels));
        var gathered = Run(() => SupervisedLoss.Sum(model, batch));

        Assert.True(Math.Abs(full.Loss - gathered.Loss) <= 1e-5 * Math.Abs(full.Loss), $"loss {gathered.Loss} vs {full.Loss}");
        double maxGrad = full.Grads.Max(g => g.Max(Math.Abs));
        double maxDiff = full.Grads.Zip(gathered.Grads).Max(p => p.First.Zip(p.Second).Max(x => Math.Abs(x.First - x.Second)));
        Assert.True(maxGrad > 0, "no gradient reached the adapters");
        Assert.True(maxDiff <= 1e-5 * maxGrad, $"max |grad diff| {maxDiff} vs max |grad| {maxGrad}");
    }
}
