using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>
/// q, k, v (and gate, up) as one widened matmul give each projection's own output and the same input and adapter
/// gradients as running them one by one, with adapters on some projections and not others, over a 16-bit and a
/// 4-bit base. Both sides widen to fp32 where the CPU does, so they differ only in GEMM blocking (bf16 rounding).
/// </summary>
public sealed class FusedProjectionsTests
{
    [Theory]
    [InlineData(16)]
    [InlineData(4)]
    public void FusedProjectionsEqualTheSeparateOnesWithTheirGradients(int bits)
    {
        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.BFloat16 }.WithBits(bits));
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj", "up_proj"] }, seed: 3);
        LoraTestKit.Randomize(model, LoraLinear.DefaultAdapter, seed: 5);
        model.eval();
        var layer = model.Layers[1];
        nn.Module<Tensor, Tensor>[] attention = [layer[ProjectionKind.Q], layer[ProjectionKind.K], layer[ProjectionKind.V]];
        nn.Module<Tensor, Tensor>[] mlp = [layer[ProjectionKind.Gate], layer[ProjectionKind.Up]];
        var parameters = LoraInjector.AdapterParameters(model).Select(p => p.P).ToList();

        using var scope = NewDisposeScope();
        // 2 × 12 rows: enough for CPU widening (≥ 16 rows), where the fused path runs
        var x0 = randn([2, 12, SeededLlama.Stories260KShapes.HiddenSize], generator: new TorchSharp.torch.Generator(11)).to(ScalarType.BFloat16);
        foreach (var group in new[] { attention, mlp })
        {
            var (fusedOut, fusedGrads) = OutputsAndGradients(x0, parameters, x => FusedProjections.Forward(x, group));
            var (separateOut, separateGrads) = OutputsAndGradients(x0, parameters, x => group.Select(p => p.forward(x)).ToArray());
            Assert.Equal(separateGrads.Length, fusedGrads.Length);
            for (int i = 0; i < group.Length; i++) WithinBf16Rounding(separateOut[i], fusedOut[i], $"output {i}");
            for (int i = 0; i < fusedGrads.Length; i++) WithinBf16Rounding(separateGrads[i], fusedGrads[i], i == 0 ? "input gradient" : $"adapter gradient {i}");
        }
    }

    [Fact]
    public void EightBitBasesAreNotFusedButStillAnswer()
    {
        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.BFloat16 }.WithBits(8));
        var layer = model.Layers[0];
        Assert.False(((IFrozenLinear)layer[ProjectionKind.Q]).CanWriteWidenedWeight(ScalarType.BFloat16));
        using var scope = NewDisposeScope();
        var x = randn([2, 12, SeededLlama.Stories260KShapes.HiddenSize], generator: new TorchSharp.torch.Generator(2)).to(ScalarType.BFloat16);
        var outputs = FusedProjections.Forward(x, layer[ProjectionKind.Q], layer[ProjectionKind.K], layer[ProjectionKind.V]);
        Assert.True(layer[ProjectionKind.K].forward(x).eq(outputs[1]).all().item<bool>());
    }

    [Fact]
    public void A4BitBaseWritesItsBf16ValuesWidened()
    {
        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.BFloat16 }.WithBits(4));
        var q = (QuantizedLinear)model.Layers[2][ProjectionKind.Q];
        using var scope = NewDisposeScope();
        var into = full([q.OutFeatures, q.InFeatures], float.NaN, ScalarType.Float32);
        q.WriteWidenedWeight(into, ScalarType.BFloat16);
        Assert.True(q.DequantizedWeight(ScalarType.BFloat16).to(ScalarType.Float32).eq(into).all().item<bool>());
    }

    /// <summary>Equal up to a few bf16 roundings of the tensor's largest values (sums of bf16-rounded terms differ by
    /// a few ulps of their largest term, also where the sum itself is small).</summary>
    private static void WithinBf16Rounding(Tensor expected, Tensor actual, string what)
    {
        double scale = expected.abs().max().item<float>();
        double diff = (expected - actual).abs().max().item<float>();
        Assert.True(diff <= scale / 32, $"{what}: max |diff| {diff} against max |value| {scale}");
    }

    private static (Tensor[] Outputs, Tensor[] Grads) OutputsAndGradients(Tensor x0, List<TorchSharp.Modules.Parameter> parameters, Func<Tensor, Tensor[]> forward)
    {
        foreach (var p in parameters) p.grad?.zero_();
        var x = x0.detach().clone().requires_grad_(true);
        var outputs = forward(x);
        // a different weight per projection so each one's gradient path is checked
        var loss = outputs.Select((o, i) => (o.to(ScalarType.Float32) * (i + 1)).sin().sum()).Aggregate((a, b) => a + b);
        loss.backward();
        // only the adapters of this group's projections: the others' gradients are zero on both sides
        var grads = parameters.Where(p => p.grad is { } g && g.abs().max().item<float>() > 0).Select(p => p.grad!.detach().clone())
            .Prepend(x.grad!.to(ScalarType.Float32)).ToArray();
        return (outputs.Select(o => o.detach().to(ScalarType.Float32)).ToArray(), grads);
    }
}
