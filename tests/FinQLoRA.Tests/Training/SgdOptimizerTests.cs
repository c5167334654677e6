using System.Text.Json;
using FinQLoRA.Training.Optimizers;
using TorchSharp;
using TorchSharp.Modules;
using static FinQLoRA.Tests.Training.OptimizerTestParameters;

namespace FinQLoRA.Tests.Training;

/// <summary>
/// <see cref="SgdOptimizer"/> against PyTorch's published <c>torch.optim.SGD</c> rule, recomputed here in plain
/// doubles (<see cref="DoubleSgd"/>), and its checkpoints: a resume from its state dict is bit-identical.
/// </summary>
public sealed class SgdOptimizerTests
{
    private static readonly long[][] Shapes = [[3, 5], [7]];
    private const int Steps = 12;

    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(0.0, 0.01)]
    [InlineData(0.9, 0.0)]
    [InlineData(0.9, 0.01)]
    public void Follows_pytorchs_sgd_rule_computed_in_doubles(double momentum, double weightDecay) =>
        AssertFollowsReference(momentum, weightDecay, hasGradient: (_, _) => true);

    [Fact]
    public void A_parameter_without_gradient_is_skipped_and_its_buffer_starts_at_its_first_gradient() =>
        // PyTorch skips a parameter whose .grad is None (no step with a zero gradient, which weight decay and momentum
        // would still move) and starts its buffer at its first gradient. The second parameter has none in steps 0-2.
        AssertFollowsReference(0.9, 0.01, hasGradient: (i, step) => i == 0 || step >= 3);

    [Fact]
    public void Flat_step_is_bit_identical_to_the_per_parameter_step()
    {
        var fused = Shapes.Select((s, i) => Create(s, 20 + i)).ToArray();
        var perParameter = fused.Select(CloneOf).ToArray();
        var options = new SgdOptions(Momentum: 0.9, WeightDecay: 0.01);
        using var optimizer = new SgdOptimizer(Named(fused), options);
        using var reference = new SgdOptimizer(Named(perParameter), options, flatBuffers: false);
        for (int step = 0; step < 6; step++)
        {
            TakeStep(optimizer, step);
            TakeStep(reference, step);
            Assert.True(optimizer.LastStepFused);
            Assert.False(reference.LastStepFused);
            for (int i = 0; i < fused.Length; i++)
            {
                Assert.Equal(Bits(perParameter[i]), Bits(fused[i]));
                Assert.Equal(Bits(reference.MomentumBuffer(i)), Bits(optimizer.MomentumBuffer(i)));
            }
        }
    }

    [Fact]
    public void Weight_decay_leaves_the_gradient_alone()
    {
        var p = Create(2f, -4f);
        using var optimizer = new SgdOptimizer([("p", p)], new SgdOptions(Momentum: 0.5, WeightDecay: 0.1));
        SetGrad(p, 0.5, 0.25);
        optimizer.Step(lr: 0.1);
        // d = g + 0.1·p = [0.7, −0.15]; the first buffer is d itself; p ← p − 0.1·d = [1.93, −3.985]
        Assert.Equal([0.5f, 0.25f], Values(p.grad!));
        Assert.Equal(1.93, Values(p)[0], 6);
        Assert.Equal(-3.985, Values(p)[1], 6);
        Assert.Equal(0.7, Values(optimizer.MomentumBuffer(0))[0], 6);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.9)]
    public void Resume_from_state_dict_is_bit_identical(double momentum)
    {
        const int before = 4, after = 5;
        var options = new SgdOptions(Momentum: momentum, WeightDecay: 0.01);
        var uninterrupted = NewParameters();
        using (var optimizer = new SgdOptimizer(uninterrupted, options))
            for (int step = 0; step < before + after; step++) TakeStep(optimizer, step);

        var first = NewParameters();
        OptimizerCheckpoint saved;
        using (var optimizer = new SgdOptimizer(first, options))
        {
            for (int step = 0; step < before; step++) TakeStep(optimizer, step);
            saved = optimizer.StateDict();
            // The state dict holds PyTorch's names and copies of the live buffers (none when momentum is 0).
            string[] expectedKeys = momentum == 0 ? [] : [.. first.Select(p => p.Name + ".momentum_buffer")];
            Assert.Equal(expectedKeys.Order(), saved.Tensors.Keys.Order());
            for (int i = 0; i < expectedKeys.Length; i++)
                Assert.Equal(Bits(optimizer.MomentumBuffer(i)), Bits(saved.Tensors[expectedKeys[i]]));
        }
        string json = JsonSerializer.Serialize<OptimizerScalarState>(saved.Scalars);
        Assert.Contains("\"algorithm\":\"sgd\"", json);
        var scalars = JsonSerializer.Deserialize<OptimizerScalarState>(json)!;
        Assert.Equal(new SgdScalarState(before, momentum), scalars);

        var resumed = first.Select(p => (p.Name, CloneOf(p.Parameter))).ToList();
        using (var optimizer = new SgdOptimizer(resumed, options))
        {
            optimizer.LoadStateDict(saved with { Scalars = scalars });
            saved.Dispose();
            for (int step = before; step < before + after; step++) TakeStep(optimizer, step);
        }

        for (int i = 0; i < uninterrupted.Count; i++)
            Assert.Equal(Bits(uninterrupted[i].Parameter), Bits(resumed[i].Item2));
    }

    [Fact]
    public void Loading_mismatched_state_is_a_user_error()
    {
        var p = Create(1f, 2f);
        using var optimizer = new SgdOptimizer([("p", p)], new SgdOptions(Momentum: 0.9));

        using var otherMomentum = new OptimizerCheckpoint(new Dictionary<string, torch.Tensor>(), new SgdScalarState(3, 0.0));
        var e = Assert.Throws<UserInputException>(() => optimizer.LoadStateDict(otherMomentum));
        Assert.Equal("optimizer state was written with sgd momentum 0, but this run has 0.9; resume with --momentum 0", e.Render(f => "--" + f));

        using var wrongShape = new OptimizerCheckpoint(new Dictionary<string, torch.Tensor> { ["p.momentum_buffer"] = torch.zeros(3) }, new SgdScalarState(1, 0.9));
        Assert.Contains("shape [3], expected [2]", Assert.Throws<UserInputException>(() => optimizer.LoadStateDict(wrongShape)).Message);

        using var wrongKind = new OptimizerCheckpoint(new Dictionary<string, torch.Tensor>(), new AdamWScalarState(1));
        Assert.Contains("AdamWScalarState but the run uses SGD", Assert.Throws<UserInputException>(() => optimizer.LoadStateDict(wrongKind)).Message);

        Assert.Contains("momentum = 1 is outside [0, 1)", Assert.Throws<UserInputException>(() => new SgdOptimizer([("q", Create(1f))], new SgdOptions(Momentum: 1.0))).Message);
        Assert.Contains("weight_decay = -0.1", Assert.Throws<UserInputException>(() => new SgdOptimizer([("q", Create(1f))], new SgdOptions(WeightDecay: -0.1))).Message);
    }

    /// <summary>
    /// Runs <see cref="Steps"/> steps of ours and of <see cref="DoubleSgd"/> from the same float values, each side
    /// computing ½‖p − 3‖² plus a drift as its gradient from its own values, and compares every element (≤ 1e-6 relative).
    /// </summary>
    private static void AssertFollowsReference(double momentum, double weightDecay, Func<int, int, bool> hasGradient)
    {
        // Values start in [1, 2] and move towards 3 (with momentum they overshoot and ring around it), so they stay
        // well away from 0 and a relative bound is meaningful.
        var ours = Shapes.Select((shape, i) => Create(shape, 30 + i)).ToArray();
        using (torch.no_grad())
            foreach (var p in ours) p.copy_(p.sigmoid().add(1));
        double[][] theirs = ours.Select(p => Values(p).Select(v => (double)v).ToArray()).ToArray();
        using var optimizer = new SgdOptimizer(Named(ours), new SgdOptions(momentum, weightDecay));
        var reference = new DoubleSgd(momentum, weightDecay, ours.Length);

        for (int step = 0; step < Steps; step++)
        {
            using var scope = torch.NewDisposeScope();
            var grads = new double[]?[ours.Length];
            for (int i = 0; i < ours.Length; i++)
            {
                if (!hasGradient(i, step))
                {
                    ours[i].grad = null;
                    continue;
                }
                double drift = 0.1 * Math.Sin(step + i);
                SetGrad(ours[i], ours[i].detach() - 3 + drift);
                grads[i] = theirs[i].Select(v => v - 3 + drift).ToArray();
            }
            double lr = 0.05 * (1 + 0.1 * step);
            optimizer.Step(lr);
            reference.Step(theirs, grads, lr);
        }

        double worst = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            float[] a = Values(ours[i]);
            for (int k = 0; k < a.Length; k++) worst = Math.Max(worst, Math.Abs(a[k] - theirs[i][k]) / Math.Abs(theirs[i][k]));
        }
        Assert.True(worst <= 1e-6, $"largest relative difference {worst:E2} (momentum {momentum}, weight decay {weightDecay})");
        // The run went somewhere: the values moved from [1, 2] by more than rounding.
        Assert.True(theirs.SelectMany(v => v).Max() > 2.1, "the reference barely moved");
    }

    /// <summary>
    /// <c>torch.optim.SGD</c>'s algorithm as its documentation states it (dampening 0, no Nesterov, no maximize), in
    /// doubles, per element: g ← g + λθ; b ← g on a parameter's first step, else b ← μb + g; θ ← θ − lr·b (θ − lr·g
    /// when μ = 0). A parameter without a gradient is skipped and keeps no buffer.
    /// </summary>
    private sealed class DoubleSgd(double momentum, double weightDecay, int count)
    {
        private readonly double[]?[] _buffers = new double[]?[count];

        public void Step(double[][] parameters, double[]?[] grads, double lr)
        {
            for (int i = 0; i < parameters.Length; i++)
            {
                if (grads[i] is not { } g) continue;
                double[] p = parameters[i];
                double[] d = [.. g.Select((gk, k) => gk + weightDecay * p[k])];
                if (momentum != 0)
                {
                    if (_buffers[i] is { } b)
                        for (int k = 0; k < d.Length; k++) b[k] = momentum * b[k] + d[k];
                    else
                        _buffers[i] = [.. d];
                    d = _buffers[i]!;
                }
                for (int k = 0; k < p.Length; k++) p[k] -= lr * d[k];
            }
        }
    }

    private static List<(string Name, Parameter Parameter)> Named(Parameter[] parameters) =>
        [.. parameters.Select((p, i) => ($"layers.{i}.lora_A", p))];

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
