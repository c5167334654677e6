using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>
/// q, k, v (and gate, up) as one matmul give each projection's own output and the same input and adapter gradients as
/// running them one by one, with adapters on some projections and not others, over 16-bit and 4-bit bases in bf16
/// (both sides widen to fp32 where the CPU does, so they differ only in GEMM blocking: bf16 rounding) and in fp32 (the
/// loader's row blocks of one dense tensor; 4-bit weights dequantized into one buffer).
/// </summary>
public sealed class FusedProjectionsTests
{
    [Theory]
    [InlineData(ScalarType.BFloat16, 16)] // widened where the CPU widens, else the loader's row blocks in place
    [InlineData(ScalarType.BFloat16, 4)]
    [InlineData(ScalarType.Float32, 16)] // the loader's row blocks, multiplied in place
    [InlineData(ScalarType.Float32, 4)] // dequantized into one fp32 buffer
    public void FusedProjectionsEqualTheSeparateOnesWithTheirGradients(ScalarType dtype, int bits)
    {
        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = dtype }.WithBits(bits));
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj", "up_proj"] }, seed: 3);
        LoraTestKit.Randomize(model, LoraLinear.DefaultAdapter, seed: 5);
        model.eval();
        var layer = model.Layers[1];
        nn.Module<Tensor, Tensor>[] attention = [layer[ProjectionKind.Q], layer[ProjectionKind.K], layer[ProjectionKind.V]];
        nn.Module<Tensor, Tensor>[] mlp = [layer[ProjectionKind.Gate], layer[ProjectionKind.Up]];
        var parameters = LoraInjector.AdapterParameters(model).Select(p => p.P).ToList();

        using var scope = NewDisposeScope();
        // 2 × 12 rows: enough for CPU widening (≥ 16 rows)
        var x0 = randn([2, 12, SeededLlama.Stories260KShapes.HiddenSize], generator: new TorchSharp.torch.Generator(11)).to(dtype);
        foreach (var group in new[] { attention, mlp })
        {
            var bases = group.Select(p => (IFrozenLinear)(p is IAdaptedProjection a ? a.BaseLayer : p)).ToArray();
            Assert.NotNull(FusedProjections.AllAtOnce(x0, bases)); // a fused path runs, on every machine
            var (fusedOut, fusedGrads) = OutputsAndGradients(x0, parameters, x => FusedProjections.Forward(x, group));
            var (separateOut, separateGrads) = OutputsAndGradients(x0, parameters, x => group.Select(p => p.forward(x)).ToArray());
            Assert.Equal(separateGrads.Length, fusedGrads.Length);
            for (int i = 0; i < group.Length; i++) Equivalent(separateOut[i], fusedOut[i], dtype, $"output {i}");
            for (int i = 0; i < fusedGrads.Length; i++) Equivalent(separateGrads[i], fusedGrads[i], dtype, i == 0 ? "input gradient" : $"adapter gradient {i}");
        }
    }

    [Fact]
    public void TheLoaderStoresQkvAndGateUpAsRowBlocksOfOneTensor()
    {
        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.Float32 });
        var layer = model.Layers[1];
        DenseLinear Dense(ProjectionKind k) => (DenseLinear)layer[k];
        using var scope = NewDisposeScope();
        var qkv = DenseLinear.RowBlocksOfOneTensor([Dense(ProjectionKind.Q), Dense(ProjectionKind.K), Dense(ProjectionKind.V)]);
        Assert.NotNull(qkv);
        var expected = cat([Dense(ProjectionKind.Q).Weight, Dense(ProjectionKind.K).Weight, Dense(ProjectionKind.V).Weight], 0);
        TensorAssert.Equal(expected, qkv!);
        Assert.NotNull(DenseLinear.RowBlocksOfOneTensor([Dense(ProjectionKind.Gate), Dense(ProjectionKind.Up)]));
        // out of order, not adjacent, or of separate storages: no view
        Assert.Null(DenseLinear.RowBlocksOfOneTensor([Dense(ProjectionKind.K), Dense(ProjectionKind.Q)]));
        Assert.Null(DenseLinear.RowBlocksOfOneTensor([Dense(ProjectionKind.Q), Dense(ProjectionKind.V)]));
        Assert.Null(DenseLinear.RowBlocksOfOneTensor([Dense(ProjectionKind.V), Dense(ProjectionKind.Gate)]));
        using var own = new DenseLinear(Dense(ProjectionKind.K).Weight.clone());
        Assert.Null(DenseLinear.RowBlocksOfOneTensor([Dense(ProjectionKind.Q), own]));
        // a moved or cast model has a storage per weight: the projections run one by one, with the same results
        model.to(ScalarType.Float64);
        Assert.Null(DenseLinear.RowBlocksOfOneTensor([Dense(ProjectionKind.Q), Dense(ProjectionKind.K), Dense(ProjectionKind.V)]));
        var x = randn([1, 3, SeededLlama.Stories260KShapes.HiddenSize], ScalarType.Float64, generator: new TorchSharp.torch.Generator(4));
        var outputs = FusedProjections.Forward(x, layer[ProjectionKind.Q], layer[ProjectionKind.K], layer[ProjectionKind.V]);
        TensorAssert.Equal(layer[ProjectionKind.V].forward(x), outputs[2], "V");
    }

    [Fact]
    public void EightBitBasesAreNotFusedButStillAnswer()
    {
        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.BFloat16 }.WithBits(8));
        var layer = model.Layers[0];
        Assert.False(((IFrozenLinear)layer[ProjectionKind.Q]).CanWriteWeight(ScalarType.BFloat16));
        using var scope = NewDisposeScope();
        var x = randn([2, 12, SeededLlama.Stories260KShapes.HiddenSize], generator: new TorchSharp.torch.Generator(2)).to(ScalarType.BFloat16);
        var outputs = FusedProjections.Forward(x, layer[ProjectionKind.Q], layer[ProjectionKind.K], layer[ProjectionKind.V]);
        TensorAssert.Equal(layer[ProjectionKind.K].forward(x), outputs[1], "K");
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, ScalarType.Float32)] // widened: bf16 values held in fp32
    [InlineData(ScalarType.BFloat16, ScalarType.BFloat16)]
    [InlineData(ScalarType.Float32, ScalarType.Float32)]
    public void A4BitBaseWritesTheValuesItsInputsDTypeUses(ScalarType inputs, ScalarType buffer)
    {
        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.BFloat16 }.WithBits(4));
        var q = (QuantizedLinear)model.Layers[2][ProjectionKind.Q];
        using var scope = NewDisposeScope();
        var into = full([q.OutFeatures, q.InFeatures], float.NaN, buffer);
        q.WriteWeight(into, inputs);
        TensorAssert.Equal(q.DequantizedWeight(inputs).to(buffer), into);
    }

    /// <summary>Equal up to fp32 rounding, or for bf16 up to a few bf16 roundings of the tensor's largest values (sums of
    /// bf16-rounded terms differ by a few ulps of their largest term, also where the sum itself is small).</summary>
    private static void Equivalent(Tensor expected, Tensor actual, ScalarType dtype, string what)
    {
        double scale = TensorAssert.MaxAbs(expected);
        TensorAssert.MaxDiffAtMost(expected, actual, dtype == ScalarType.Float32 ? scale * 1e-5 : scale / 32, what);
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
        var grads = parameters.Where(p => p.grad is { } g && TensorAssert.MaxAbs(g) > 0).Select(p => p.grad!.detach().clone())
            .Prepend(x.grad!.to(ScalarType.Float32)).ToArray();
        return (outputs.Select(o => o.detach().to(ScalarType.Float32)).ToArray(), grads);
    }
}
