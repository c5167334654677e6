using System.Text.Json;
using FinQLoRA.Training.Optimizers;
using TorchSharp;
using TorchSharp.Modules;
using static FinQLoRA.Tests.Training.OptimizerTestParameters;

namespace FinQLoRA.Tests.Training;

public sealed class AdamWOptimizerTests
{
    [Fact]
    public void First_step_matches_hand_values()
    {
        var p = Create(1f, -2f);
        using var optimizer = new AdamWOptimizer([("p", p)], new AdamWOptions(WeightDecay: 0.01));
        SetGrad(p, 0.5, -0.25);
        optimizer.Step(lr: 0.1);

        // p ← p·(1 − 0.1·0.01) = [0.999, −1.998]; m = 0.1·g, v = 0.001·g²; bias corrections 0.1 and 0.001 give
        // m̂ = g, √v̂ = |g|, so p ← p − 0.1·g/(|g| + 1e-8) ≈ p − 0.1·sign(g) = [0.899, −1.898].
        float[] values = Values(p);
        Assert.Equal(0.899, values[0], 6);
        Assert.Equal(-1.898, values[1], 6);
    }

    [Fact]
    public void Follows_torchsharp_adamw_trajectory()
    {
        var ours = new[] { Create([3, 4], 1), Create([5], 2) };
        var theirs = ours.Select(CloneOf).ToArray();
        var targets = new[] { torch.randn(3, 4, generator: new torch.Generator(7)), torch.randn(5, generator: new torch.Generator(8)) };
        using var optimizer = new AdamWOptimizer([("a", ours[0]), ("b", ours[1])], new AdamWOptions(0.9, 0.999, 1e-8, 0.05));
        using var reference = torch.optim.AdamW(theirs, lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.05);

        for (int step = 0; step < 25; step++)
        {
            using var scope = torch.NewDisposeScope();
            for (int i = 0; i < ours.Length; i++)
            {
                // Quadratic loss ½‖p − target‖² ⇒ gradient p − target, each side from its own parameters.
                SetGrad(ours[i], ours[i].detach() - targets[i]);
                SetGrad(theirs[i], theirs[i].detach() - targets[i]);
            }
            optimizer.Step(0.05);
            reference.step();
        }

        // TorchSharp computes m with mul_/add_ where PyTorch (and we) use lerp_, so agreement is to rounding only.
        for (int i = 0; i < ours.Length; i++)
        {
            float[] a = Values(ours[i]), b = Values(theirs[i]);
            for (int k = 0; k < a.Length; k++) Assert.True(Math.Abs(a[k] - b[k]) <= 1e-5 * Math.Max(1, Math.Abs(b[k])), $"param {i}[{k}]: {a[k]} vs {b[k]}");
            Assert.NotEqual(Values(targets[i]), a); // it moved but has not trivially converged onto the target
        }
    }

    [Fact]
    public void Resume_from_state_dict_is_bit_identical()
    {
        const int before = 4, after = 5;
        var uninterrupted = NewParameters();
        using (var optimizer = new AdamWOptimizer(uninterrupted, new AdamWOptions(WeightDecay: 0.1)))
            for (int step = 0; step < before + after; step++) TakeStep(optimizer, step);

        var first = NewParameters();
        OptimizerCheckpoint saved;
        using (var optimizer = new AdamWOptimizer(first, new AdamWOptions(WeightDecay: 0.1)))
        {
            for (int step = 0; step < before; step++) TakeStep(optimizer, step);
            saved = optimizer.StateDict();
        }
        var scalars = JsonSerializer.Deserialize<OptimizerScalarState>(JsonSerializer.Serialize<OptimizerScalarState>(saved.Scalars))!;
        Assert.Equal(new AdamWScalarState(before), scalars);

        var resumed = first.Select(p => (p.Name, CloneOf(p.Parameter))).ToList();
        using (var optimizer = new AdamWOptimizer(resumed, new AdamWOptions(WeightDecay: 0.1)))
        {
            optimizer.LoadStateDict(saved with { Scalars = scalars });
            saved.Dispose();
            for (int step = before; step < before + after; step++) TakeStep(optimizer, step);
        }

        for (int i = 0; i < uninterrupted.Count; i++)
            Assert.Equal(Bits(uninterrupted[i].Parameter), Bits(resumed[i].Item2));
    }

    [Fact]
    public void Parameters_without_gradient_are_skipped_and_zero_grad_zeroes()
    {
        var withGrad = Create(1f);
        var without = Create(5f);
        using var optimizer = new AdamWOptimizer([("a", withGrad), ("b", without)]);
        SetGrad(withGrad, 1.0);
        optimizer.Step(0.1);
        Assert.Equal(5f, Values(without)[0]);
        Assert.NotEqual(1f, Values(withGrad)[0]);
        optimizer.ZeroGrad();
        Assert.Equal(0f, Values(withGrad.grad!)[0]);
        Assert.Throws<InvalidOperationException>(() => optimizer.StateDict()); // step counts now differ
    }

    [Fact]
    public void Loading_mismatched_state_is_a_user_error()
    {
        var p = Create(1f, 2f);
        using var optimizer = new AdamWOptimizer([("p", p)]);
        using var wrongShape = new OptimizerCheckpoint(new Dictionary<string, torch.Tensor>
        {
            ["p.exp_avg"] = torch.zeros(3),
            ["p.exp_avg_sq"] = torch.zeros(3),
        }, new AdamWScalarState(1));
        Assert.Contains("shape [3], expected [2]", Assert.Throws<UserInputException>(() => optimizer.LoadStateDict(wrongShape)).Message);

        using var wrongKind = new OptimizerCheckpoint(new Dictionary<string, torch.Tensor>(), new ZeroOneAdamScalarState(1, 1, 0, 1, 0, 0, true, false, false));
        Assert.Throws<UserInputException>(() => optimizer.LoadStateDict(wrongKind));
        Assert.Throws<UserInputException>(() => new AdamWOptimizer([("q", Create(1f))], new AdamWOptions(Beta1: 1.0)));
    }

    private static List<(string Name, Parameter Parameter)> NewParameters() =>
        [("layers.0.lora_A", Create([2, 3], 11)), ("layers.0.lora_B", Create([3, 2], 12))];

    /// <summary>Deterministic gradients that depend on the step and on the current values (½‖p − c‖² plus a drift).</summary>
    private static void TakeStep(IAdapterOptimizer optimizer, int step)
    {
        using var scope = torch.NewDisposeScope();
        foreach (var (_, parameter) in optimizer.Parameters)
            SetGrad(parameter, parameter.detach() - 0.3 + 0.1 * Math.Sin(step));
        optimizer.Step(1e-2 * (1 + 0.1 * step));
        optimizer.ZeroGrad();
    }
}
