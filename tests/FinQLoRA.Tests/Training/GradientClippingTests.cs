using FinQLoRA.Training.Optimizers;
using TorchSharp;
using static FinQLoRA.Tests.Training.OptimizerTestParameters;

namespace FinQLoRA.Tests.Training;

public sealed class GradientClippingTests
{
    [Fact]
    public void Clips_to_the_global_norm_and_returns_the_norm_before_clipping()
    {
        var a = Create(0f, 0f);
        var b = Create(0f);
        SetGrad(a, 3, 4);
        SetGrad(b, 12);

        // total = √(3² + 4² + 12²) = √169 = 13; coef = 6.5 / (13 + 1e-6) = 0.49999996…
        double norm = GradientClipping.ClipGradNorm([a, b], maxNorm: 6.5);

        Assert.Equal(13.0, norm, 5);
        double coef = 6.5 / (13 + 1e-6);
        Assert.Equal(3 * coef, Values(a.grad!)[0], 5);
        Assert.Equal(4 * coef, Values(a.grad!)[1], 5);
        Assert.Equal(12 * coef, Values(b.grad!)[0], 5);
    }

    [Fact]
    public void Leaves_small_gradients_alone_and_skips_missing_ones()
    {
        var a = Create(0f, 0f);
        var noGrad = Create(1f);
        SetGrad(a, 0.3, -0.4);
        double norm = GradientClipping.ClipGradNorm([a, noGrad], maxNorm: 1.0);
        Assert.Equal(0.5, norm, 6);
        Assert.Equal(new[] { 0.3f, -0.4f }, Values(a.grad!)); // coef clamps to 1: multiplying by 1 changes no bit
        Assert.Null(noGrad.grad);
        Assert.Equal(0.0, GradientClipping.ClipGradNorm([noGrad], 1.0));
    }

    [Fact]
    public void Agrees_bit_for_bit_with_libtorch_clip_grad_norm()
    {
        var ours = new[] { Create([4, 8], 1), Create([8, 4], 2), Create([3], 3) };
        var theirs = ours.Select(CloneOf).ToArray();
        for (int i = 0; i < ours.Length; i++)
        {
            using var g = torch.randn(ours[i].shape, generator: new torch.Generator((ulong)(10 + i))).mul(3);
            SetGrad(ours[i], g);
            SetGrad(theirs[i], g);
        }

        double ourNorm = GradientClipping.ClipGradNorm(ours, 0.7);
        double theirNorm = torch.nn.utils.clip_grad_norm_(theirs, 0.7);

        Assert.Equal((float)theirNorm, (float)ourNorm);
        for (int i = 0; i < ours.Length; i++) Assert.Equal(Bits(theirs[i].grad!), Bits(ours[i].grad!));
    }

    [Fact]
    public void Finite_check_names_the_parameters_with_nan_or_inf()
    {
        var good = Create(0f, 0f);
        var nan = Create(0f);
        var inf = Create(0f, 0f);
        var none = Create(0f);
        SetGrad(good, 1, 2);
        SetGrad(nan, double.NaN);
        SetGrad(inf, 1, double.NegativeInfinity);
        var named = new[] { ("good", good), ("nan", nan), ("inf", inf), ("none", none) };

        Assert.Equal(["nan", "inf"], GradientFiniteCheck.NonFiniteGradients(named));
        Assert.False(GradientFiniteCheck.AllFinite(named));
        Assert.True(GradientFiniteCheck.AllFinite([("good", good), ("none", none)]));
        Assert.True(double.IsNaN(GradientClipping.ClipGradNorm([good, nan], 1.0)));
    }
}
