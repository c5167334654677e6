using FinQLoRA.Adapters;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Adapters;

/// <summary>One wrapped projection against the formulas of PEFT's lora.Linear and DoRA, on random weights (no shared data).</summary>
public sealed class LoraLinearTests
{
    private static (LoraLinear Lora, Tensor W) Make(long outF, long inF, LoraConfig config, long seed = 7, ScalarType dtype = ScalarType.Float32)
    {
        using var g = new Generator((ulong)seed);
        var w = (randn([outF, inF], generator: g) * 0.1).to(dtype);
        var lora = new LoraLinear(new DenseLinear(w.clone()));
        lora.AddAdapter("default", config, g);
        return (lora, w);
    }

    [Fact]
    public void AIsKaimingUniformWithBoundOneOverSqrtInAndBIsZero()
    {
        // torch.nn.init.kaiming_uniform_(a=√5): gain √(2/(1+5)) = √(1/3), bound √3·gain/√fan_in = 1/√fan_in.
        Assert.Equal(1 / Math.Sqrt(256), LoraInit.KaimingUniformBound(256, Math.Sqrt(5)), 12);
        var (lora, _) = Make(64, 256, new LoraConfig { Rank = 64 });
        var a = lora.Adapters["default"].A;
        double bound = 1 / Math.Sqrt(256);
        Assert.Equal([64L, 256L], a.shape);
        Assert.Equal(ScalarType.Float32, a.dtype);
        double max = TensorAssert.MaxAbs(a), mean = a.mean().item<float>(), std = a.std().item<float>();
        Assert.True(max <= bound, $"max |A| {max} exceeds the bound {bound}");
        Assert.True(max > 0.99 * bound, $"max |A| {max} is far below the bound {bound}: not U(-b, b)");
        Assert.True(Math.Abs(mean) < 0.01 * bound, $"mean {mean}");
        Assert.InRange(std, 0.97 * bound / Math.Sqrt(3), 1.03 * bound / Math.Sqrt(3)); // U(-b,b) has std b/√3
        Assert.Equal(0, lora.Adapters["default"].B.abs().sum().item<float>());
    }

    [Fact]
    public void SameSeedGivesSameA()
    {
        var (l1, _) = Make(8, 32, new LoraConfig { Rank = 4 }, seed: 3);
        var (l2, _) = Make(8, 32, new LoraConfig { Rank = 4 }, seed: 3);
        var (l3, _) = Make(8, 32, new LoraConfig { Rank = 4 }, seed: 4);
        Assert.True(l1.Adapters["default"].A.Equals(l2.Adapters["default"].A));
        Assert.False(l1.Adapters["default"].A.Equals(l3.Adapters["default"].A));
    }

    [Fact]
    public void FreshAdapterLeavesOutputUnchanged()
    {
        var (lora, w) = Make(24, 16, new LoraConfig { Rank = 4, Alpha = 32 });
        var x = randn(3, 5, 16);
        Assert.True(lora.forward(x).Equals(nn.functional.linear(x, w)));
    }

    [Theory]
    [InlineData(false, 32.0 / 4)]
    [InlineData(true, 32.0 / 2)] // rsLoRA: α/√r = 32/√4
    public void ForwardIsBasePlusScaledBA(bool rsLora, double expectedScaling)
    {
        var config = new LoraConfig { Rank = 4, Alpha = 32, UseRsLora = rsLora };
        Assert.Equal(expectedScaling, config.Scaling, 12);
        var (lora, w) = Make(24, 16, config);
        var adapter = lora.Adapters["default"];
        using (no_grad()) adapter.B.copy_(randn(24, 4));
        var x = randn(2, 3, 16);
        var expected = nn.functional.linear(x, w) + nn.functional.linear(x, adapter.B.matmul(adapter.A)) * expectedScaling;
        TensorAssert.Close(expected, lora.forward(x), rtol: 1e-5, atol: 1e-5);
    }

    [Fact]
    public void Bf16BaseKeepsBf16OutputWithFp32Adapter()
    {
        var (lora, w) = Make(24, 16, new LoraConfig { Rank = 4, Alpha = 8 }, dtype: ScalarType.BFloat16);
        var adapter = lora.Adapters["default"];
        Assert.Equal(ScalarType.Float32, adapter.A.dtype);
        using (no_grad()) adapter.B.copy_(randn(24, 4));
        var x = randn(2, 16).to(ScalarType.BFloat16);
        var y = lora.forward(x);
        Assert.Equal(ScalarType.BFloat16, y.dtype);
        // PEFT: bf16 base result + fp32 branch on fp32 x, summed in fp32, then cast to bf16.
        var expected = (nn.functional.linear(x, w) + nn.functional.linear(x.to(ScalarType.Float32), adapter.B.matmul(adapter.A)) * 2.0).to(ScalarType.BFloat16);
        Assert.True(y.Equals(expected));
    }

    [Fact]
    public void DropoutActsOnlyOnTheAdapterBranchAndOnlyInTraining()
    {
        var (lora, w) = Make(24, 16, new LoraConfig { Rank = 4, Alpha = 8, Dropout = 0.5 });
        var adapter = lora.Adapters["default"];
        var x = randn(4, 16);
        lora.train();
        Assert.True(lora.forward(x).Equals(nn.functional.linear(x, w))); // B = 0: dropout cannot touch the base
        using (no_grad()) adapter.B.copy_(randn(24, 4));
        var clean = nn.functional.linear(x, w) + nn.functional.linear(x, adapter.B.matmul(adapter.A)) * 2.0;
        TensorAssert.NotClose(clean, lora.forward(x), rtol: 1e-5, atol: 1e-5);
        lora.eval();
        TensorAssert.Close(clean, lora.forward(x), rtol: 1e-5, atol: 1e-5);
    }

    [Fact]
    public void DoraMagnitudeStartsAtRowNormsAndMatchesTheFormula()
    {
        var (lora, w) = Make(24, 16, new LoraConfig { Rank = 4, Alpha = 8, UseDora = true });
        var adapter = lora.Adapters["default"];
        var rowNorms = w.pow(2).sum(1).sqrt();
        TensorAssert.Close(rowNorms, adapter.Magnitude!, rtol: 1e-6, atol: 1e-6);
        var x = randn(3, 16);
        TensorAssert.Close(nn.functional.linear(x, w), lora.forward(x), rtol: 1e-5, atol: 1e-6); // m/n = 1, B = 0

        using (no_grad())
        {
            adapter.B.copy_(randn(24, 4) * 0.1);
            adapter.Magnitude!.mul_(1 + 0.2 * rand(24));
        }
        // DoRA: W' = m · (W + sBA) / ‖W + sBA‖, written out independently of LoraLinear.
        var merged = w + adapter.B.matmul(adapter.A) * 2.0;
        var wPrime = (adapter.Magnitude / merged.pow(2).sum(1).sqrt()).unsqueeze(1) * merged;
        TensorAssert.Close(nn.functional.linear(x, wPrime), lora.forward(x), rtol: 1e-5, atol: 1e-5);
        TensorAssert.Close(wPrime, lora.MergedWeight("default", ScalarType.Float32), rtol: 1e-6, atol: 1e-6);
    }

    [Fact]
    public void DoraGradientTreatsTheNormAsAConstant()
    {
        var (lora, w) = Make(6, 5, new LoraConfig { Rank = 2, Alpha = 2, UseDora = true });
        var adapter = lora.Adapters["default"];
        using (no_grad()) adapter.B.copy_(randn(6, 2));
        var x = randn(4, 5);
        lora.forward(x).pow(2).sum().backward();

        Tensor GradB(bool detachNorm)
        {
            var a = adapter.A.detach().clone();
            var b = adapter.B.detach().clone().requires_grad_(true);
            var m = adapter.Magnitude!.detach().clone();
            var merged = w + b.matmul(a) * 1.0;
            var n = merged.pow(2).sum(1).sqrt();
            if (detachNorm) n = n.detach();
            nn.functional.linear(x, (m / n).unsqueeze(1) * merged).pow(2).sum().backward();
            return b.grad!;
        }
        TensorAssert.Close(GradB(detachNorm: true), adapter.B.grad!, rtol: 1e-4, atol: 1e-6);
        TensorAssert.NotClose(GradB(detachNorm: false), adapter.B.grad!, rtol: 1e-4, atol: 1e-6);
    }

    [Fact]
    public void NoActiveAdapterIsExactlyTheBase()
    {
        var (lora, w) = Make(24, 16, new LoraConfig { Rank = 4 });
        using (no_grad()) lora.Adapters["default"].B.copy_(randn(24, 4));
        lora.ActiveAdapter = null;
        var x = randn(2, 16);
        Assert.True(lora.forward(x).Equals(nn.functional.linear(x, w)));
        Assert.Throws<ArgumentException>(() => lora.ActiveAdapter = "missing");
    }
}
