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

    /// <summary>Training passes no padding mask for right-padded rows (attention takes the causal flag): each row's
    /// loss and gradients must still be the ones it has alone, unpadded.</summary>
    [Fact]
    public void ARightPaddedTrainingBatchGivesTheSumOfItsRowsAlone()
    {
        using var model = SeededLlama.Load();
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, Dropout = 0, TargetModules = [LoraTargets.AllLinear] }, seed: 3);
        LoraTestKit.Randomize(model, LoraLinear.DefaultAdapter, seed: 5);
        model.train(); // the training path, where a plain causal mask becomes the causal flag
        var examples = new List<TokenizedExample>
        {
            new([1, 403, 407, 261, 378, 3, 90], [-100, -100, -100, -100, -100, 3, 90]),
            new([1, 88, 19, 270], [-100, -100, 19, 270]),
            new([1, 88, 19, 270, 301, 45, 12, 7, 9], [-100, -100, -100, -100, -100, -100, 12, 7, 9]),
        };
        var parameters = LoraInjector.AdapterParameters(model).Select(p => p.P).ToList();
        (float Loss, float[][] Grads) Run(IReadOnlyList<TokenizedExample> rows)
        {
            foreach (var p in parameters) p.grad?.zero_();
            using var scope = NewDisposeScope();
            using var batch = SftCollator.Collate(rows, padId: 2, CPU);
            var l = SupervisedLoss.Sum(model, batch);
            l.backward();
            return (l.item<float>(), parameters.Select(p => p.grad!.data<float>().ToArray()).ToArray());
        }
        var batched = Run(examples);
        var alone = examples.Select(e => Run([e])).ToList();
        float aloneLoss = alone.Sum(a => a.Loss);
        var aloneGrads = Enumerable.Range(0, parameters.Count)
            .Select(i => Enumerable.Range(0, batched.Grads[i].Length).Select(j => alone.Sum(a => a.Grads[i][j])).ToArray()).ToArray();

        Assert.True(Math.Abs(batched.Loss - aloneLoss) <= 1e-5 * Math.Abs(aloneLoss), $"loss {batched.Loss} vs {aloneLoss}");
        double maxGrad = aloneGrads.Max(g => g.Max(Math.Abs));
        double maxDiff = aloneGrads.Zip(batched.Grads).Max(p => p.First.Zip(p.Second).Max(x => Math.Abs(x.First - x.Second)));
        Assert.True(maxGrad > 0, "no gradient reached the adapters");
        Assert.True(maxDiff <= 1e-5 * maxGrad, $"max |grad diff| {maxDiff} vs max |grad| {maxGrad}");
    }
}
