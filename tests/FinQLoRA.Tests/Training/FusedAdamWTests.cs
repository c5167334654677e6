using FinQLoRA.Training.Optimizers;
using TorchSharp;
using TorchSharp.Modules;
using FinQLoRA.Tests.Support;
using static FinQLoRA.Tests.Training.OptimizerTestParameters;

namespace FinQLoRA.Tests.Training;

/// <summary>The flat-buffer AdamW step against the old per-tensor one (<see cref="ReferenceAdamW"/>), bit for bit.</summary>
public sealed class FusedAdamWTests
{
    // Odd sizes put elements in the scalar tails of the per-tensor kernels but in the vector body of the flat one;
    // the last shape is above libtorch's parallel grain (32768 elements), so both sides also split across threads.
    private static readonly long[][] Shapes = [[3, 5], [7], [16, 4], [4, 33], [1], [2, 3, 4], [256, 160], [768, 4]];

    private static readonly AdamWOptions Options = new(WeightDecay: 0.05);

    [Fact]
    public void Fused_step_is_bit_identical_to_the_per_tensor_reference()
    {
        var (ours, theirs) = Pairs();
        using var optimizer = new AdamWOptimizer(Named(ours), Options);
        using var reference = new ReferenceAdamW(theirs, Options);
        for (int step = 0; step < 10; step++)
        {
            SetRandomGrads(ours, theirs, step, skip: -1);
            optimizer.Step(Lr(step));
            reference.Step(Lr(step));
            Assert.True(optimizer.LastStepFused);
            AssertSameStep(ours, theirs, optimizer, reference);
        }
    }

    [Fact]
    public void Null_gradient_steps_fall_back_per_tensor_and_still_match()
    {
        const int late = 2; // this parameter has no gradient until step 3, so its step count lags behind for good
        var (ours, theirs) = Pairs();
        using var optimizer = new AdamWOptimizer(Named(ours), Options);
        using var reference = new ReferenceAdamW(theirs, Options);
        for (int step = 0; step < 10; step++)
        {
            SetRandomGrads(ours, theirs, step, skip: step < 3 ? late : -1);
            optimizer.Step(Lr(step));
            reference.Step(Lr(step));
            Assert.False(optimizer.LastStepFused);
            AssertSameStep(ours, theirs, optimizer, reference);
        }
    }

    [Fact]
    public void Autograd_accumulates_into_the_flat_gradients_across_micro_batches()
    {
        var (ours, theirs) = Pairs();
        using var optimizer = new AdamWOptimizer(Named(ours), Options);
        using var reference = new ReferenceAdamW(theirs, Options);
        for (int step = 0; step < 6; step++)
        {
            for (int micro = 0; micro < 2; micro++)
            {
                Backward(ours, step, micro);
                Backward(theirs, step, micro);
            }
            optimizer.Step(Lr(step));
            reference.Step(Lr(step));
            Assert.True(optimizer.LastStepFused);
            AssertSameStep(ours, theirs, optimizer, reference);
            optimizer.ZeroGrad();
            foreach (var p in theirs) { using var noGrad = torch.no_grad(); p.grad?.zero_(); }
        }
    }

    [Fact]
    public void Parameters_keep_their_values_and_the_state_dict_keeps_its_names()
    {
        var (ours, theirs) = Pairs();
        using var optimizer = new AdamWOptimizer(Named(ours), Options);
        using var scope = torch.NewDisposeScope();
        for (int i = 0; i < ours.Length; i++) TensorAssert.Equal(theirs[i], ours[i], $"parameter {i}");
        SetRandomGrads(ours, theirs, 0, skip: -1);
        optimizer.Step(1e-3);
        using var state = optimizer.StateDict();
        Assert.Equal(Enumerable.Range(0, ours.Length).SelectMany(i => new[] { $"p{i}.exp_avg", $"p{i}.exp_avg_sq" }).Order(), state.Tensors.Keys.Order());
        Assert.Equal(Shapes[3], state.Tensors["p3.exp_avg"].shape);
    }

    private static (Parameter[] Ours, Parameter[] Theirs) Pairs()
    {
        var ours = Shapes.Select((shape, i) => Create(shape, 100 + i)).ToArray();
        return (ours, ours.Select(CloneOf).ToArray());
    }

    private static List<(string Name, Parameter Parameter)> Named(Parameter[] parameters) =>
        parameters.Select((p, i) => ($"p{i}", p)).ToList();

    private static double Lr(int step) => 1e-2 * (1 + 0.1 * step);

    /// <summary>The same random gradients on both sides; parameter <paramref name="skip"/> gets none (stays null).</summary>
    private static void SetRandomGrads(Parameter[] ours, Parameter[] theirs, int step, int skip)
    {
        using var scope = torch.NewDisposeScope();
        for (int i = 0; i < ours.Length; i++)
        {
            if (i == skip) continue;
            var grad = torch.randn(ours[i].shape, generator: new torch.Generator((ulong)(1000 * step + i)));
            SetGrad(ours[i], grad);
            SetGrad(theirs[i], grad);
        }
    }

    /// <summary>A loss whose gradient differs per parameter, step and micro-batch: Σ sin(p·c)·c.</summary>
    private static void Backward(Parameter[] parameters, int step, int micro)
    {
        using var scope = torch.NewDisposeScope();
        double c = 0.5 + 0.1 * step + 0.05 * micro;
        parameters.Select(p => (p * c).sin().sum() * c).Aggregate((a, b) => a + b).backward();
    }

    /// <summary>Parameters and both moments equal bit for bit.</summary>
    private static void AssertSameStep(Parameter[] ours, Parameter[] theirs, AdamWOptimizer optimizer, ReferenceAdamW reference)
    {
        using var scope = torch.NewDisposeScope();
        for (int i = 0; i < ours.Length; i++)
        {
            TensorAssert.Equal(theirs[i], ours[i], $"parameter {i}");
            Assert.Equal(Bits(theirs[i]), Bits(ours[i]));
            Assert.Equal(Bits(reference.ExpAvg(i)), Bits(optimizer.ExpAvg(i)));
            Assert.Equal(Bits(reference.ExpAvgSq(i)), Bits(optimizer.ExpAvgSq(i)));
        }
    }
}
