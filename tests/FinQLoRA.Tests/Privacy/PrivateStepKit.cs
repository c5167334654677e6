using FinQLoRA.Adapters;
using FinQLoRA.Data.Sft;
using FinQLoRA.Distributed;
using FinQLoRA.Models;
using FinQLoRA.Privacy;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;
using FinQLoRA.Training.Optimizers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Privacy;

/// <summary>The adapter kinds per-unit gradients are checked for.</summary>
public enum Variant { Lora, RsLora, Dora }

/// <summary>The seeded fp32 Llama with a LoRA, rsLoRA or DoRA adapter on every projection (B and DoRA's m made
/// non-trivial), short examples of the seeded tokenizer's ids, and batch-1 backward passes as the reference.</summary>
internal static class PrivateStepKit
{
    public static DecoderModel Model(Variant variant, double dropout = 0, long seed = 3)
    {
        var model = SeededLlama.Load();
        LoraInjector.Apply(model, new LoraConfig
        {
            Rank = 4, Alpha = 8, Dropout = dropout, TargetModules = [LoraTargets.AllLinear],
            UseRsLora = variant == Variant.RsLora, UseDora = variant == Variant.Dora,
        }, seed);
        LoraTestKit.Randomize(model, LoraLinear.DefaultAdapter, seed: seed + 2);
        return model;
    }

    public static List<(string Name, Parameter P)> Parameters(DecoderModel model) => [.. LoraInjector.AdapterParameters(model)];

    /// <summary>Five examples of 5–10 tokens with 2–4 targets each.</summary>
    public static TokenizedExample[] Examples(params int[] units)
    {
        TokenizedExample[] examples =
        [
            new([1, 403, 407, 261, 378, 3, 90, 44], [-100, -100, -100, -100, -100, 3, 90, 44]),
            new([1, 88, 19, 270, 5, 6], [-100, -100, -100, 270, 5, 6]),
            new([1, 88, 19, 270, 301, 45, 12, 7, 9, 300], [-100, -100, -100, -100, -100, -100, 12, 7, 9, 300]),
            new([1, 5, 6, 7, 8], [-100, -100, -100, 7, 8]),
            new([1, 30, 31, 32, 33, 34, 35], [-100, -100, -100, -100, 33, 34, 35]),
        ];
        if (units.Length == 0) units = [.. Enumerable.Range(0, examples.Length)];
        return [.. examples.Select((e, i) => e with { Unit = units[i] })];
    }

    /// <summary>Examples with no target token: the data gradient is exactly zero, so a step's gradient is its noise.</summary>
    public static TokenizedExample[] ZeroGradientExamples(params int[] units) =>
        [.. units.Select(u => new TokenizedExample([1, 40 + u, 50, 60], [-100, -100, -100, -100]) { Unit = u })];

    public static PrivateTrainingStep Step(DecoderModel model, IAdapterOptimizer optimizer, PrivateStepSettings settings, long? rowsPerChunk = null) =>
        new(model, Parameters(model), optimizer, new SingleProcessCommunicator(), settings, padId: 2, CPU, CancellationToken.None) { RowsPerChunk = rowsPerChunk };

    public static PrivateStepSettings Settings(double sigma = 0, double clip = 1e6, double expected = 1, long seed = 11) => new(sigma, clip, expected, seed);

    /// <summary>The gradient of one example's MEAN target-token loss from a backward pass of that example alone
    /// (the trainer's plain summed loss divided by the count): the reference for per-example gradients.</summary>
    public static Tensor[] BatchOneGradient(DecoderModel model, TokenizedExample example)
    {
        var parameters = Parameters(model);
        foreach (var (_, p) in parameters) p.grad?.zero_();
        using (var scope = NewDisposeScope())
        {
            using var batch = SftCollator.Collate([example with { SegmentStarts = null, SegmentUnits = null }], padId: 2, CPU);
            int targets = example.Labels.Skip(1).Count(l => l != TokenizedExample.IgnoreIndex);
            (SupervisedLoss.Sum(model, batch) / targets).backward();
        }
        var grads = parameters.Select(p => Copy(p.P.grad!)).ToArray();
        foreach (var (_, p) in parameters) p.grad!.zero_();
        return grads;
    }

    /// <summary>Σ of <paramref name="a"/> and <paramref name="b"/> parameter by parameter (new tensors).</summary>
    public static Tensor[] Add(Tensor[] a, Tensor[] b) => [.. a.Zip(b, (x, y) => Copy(x + y))];

    public static Tensor Copy(Tensor t)
    {
        var c = t.detach().clone();
        c.DetachFromDisposeScope();
        return c;
    }

    /// <summary>max |got − expected| over all parameters, relative to max |expected|.</summary>
    public static double RelativeError(IReadOnlyList<Tensor> got, IReadOnlyList<Tensor> expected)
    {
        double scale = expected.Max(TensorAssert.MaxAbs);
        Assert.True(scale > 0, "the reference gradient is zero: the comparison would prove nothing");
        return got.Zip(expected, (g, e) => TensorAssert.MaxDiff(g, e)).Max() / scale;
    }

    /// <summary>Joint ℓ2 norm of a set of tensors.</summary>
    public static double Norm(IEnumerable<Tensor> tensors) => Math.Sqrt(tensors.Sum(t => t.to(ScalarType.Float64).square().sum().item<double>()));
}

/// <summary>AdamW that keeps a copy of the gradients it was handed at each step (what the DP step wrote into .grad).</summary>
internal sealed class RecordingOptimizer(IReadOnlyList<(string Name, Parameter P)> parameters) : IAdapterOptimizer
{
    private readonly AdamWOptimizer _inner = new(parameters);

    public List<Tensor[]> Gradients { get; } = [];
    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters => _inner.Parameters;
    public bool CommunicatesGradients => false;

    public void Step(double lr)
    {
        Gradients.Add([.. _inner.Parameters.Select(p => PrivateStepKit.Copy(p.Parameter.grad!))]);
        _inner.Step(lr);
    }

    public void ZeroGrad() => _inner.ZeroGrad();
    public OptimizerCheckpoint StateDict() => _inner.StateDict();
    public void LoadStateDict(OptimizerCheckpoint state) => _inner.LoadStateDict(state);

    public void Dispose()
    {
        foreach (var t in Gradients.SelectMany(g => g)) t.Dispose();
        _inner.Dispose();
    }
}
