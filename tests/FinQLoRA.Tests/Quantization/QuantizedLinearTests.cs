using FinQLoRA.Quantization;
using FinQLoRA.Quantization.Gemv;
using FinQLoRA.Runtime;
using FinQLoRA.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization;

public sealed class QuantizedLinearTests
{
    static QuantizedLinearTests() => TorchNativeLoader.EnsureLoaded();

    public static TheoryData<int, bool> Layers() => new() { { 4, false }, { 4, true }, { 8, false }, { 8, true } };

    private static QuantizedLinear Make(int bits, bool bias, Generator gen)
    {
        Tensor w = normal(0, 0.05, [48, 64], generator: gen);
        var options = new QuantizationOptions(Bits: bits);
        return new QuantizedLinear(Quantizer.Quantize(w, options), bias ? randn([48], generator: gen) : null, options.Int8Threshold);
    }

    /// <summary>Autograd: x gets grad_y·W (W dequantized), and there is nothing else a gradient could go to.</summary>
    [Theory]
    [MemberData(nameof(Layers))]
    public void BackwardGivesTheInputGradientAndNothingElse(int bits, bool withBias)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(21);
        using var layer = Make(bits, withBias, gen);
        Assert.Empty(layer.parameters());
        Tensor x = randn([2, 3, 64], generator: gen).requires_grad_(true);
        Tensor g = randn([2, 3, 48], generator: gen);
        Tensor y = layer.forward(x);
        Assert.True(y.requires_grad);
        (y * g).sum().backward();

        Tensor w = layer.DequantizedWeight(ScalarType.Float32);
        Tensor expected = g.matmul(w);
        Assert.True(x.grad is not null);
        TensorAssert.Close(expected, x.grad!, rtol: 1e-5, atol: 1e-6);
        foreach (var (_, b) in layer.named_buffers())
        {
            Assert.False(b.requires_grad);
            Assert.True(b.grad is null);
        }
    }

    [Theory]
    [MemberData(nameof(Layers))]
    public void ForwardIsTheDequantizedLinear(int bits, bool withBias)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(8);
        using var layer = Make(bits, withBias, gen);
        // more rows than the fused gemv takes: dequantize-then-matmul, bit for bit (FusedGemvTests checks 1–8 rows)
        Tensor x = randn([FusedGemv.MaxRows + 1, 64], generator: gen);
        Tensor y = layer.forward(x);
        Tensor expected = bits == 8
            ? LlmInt8.Linear(x, (Int8RowwiseTensor)layer.Weight, 6.0)
            : nn.functional.linear(x, layer.DequantizedWeight(ScalarType.Float32));
        if (layer.Bias is Tensor b) expected = expected + b;
        Assert.Equal(TensorBits.F32(expected), TensorBits.F32(y));
        Assert.False(y.requires_grad);
        // with grad enabled and x requiring grad, the autograd path computes the same values
        Tensor y2 = layer.forward(x.clone().requires_grad_(true));
        Assert.Equal(TensorBits.F32(expected), TensorBits.F32(y2));
    }

    [Fact]
    public void BFloat16InputGivesBFloat16OutputAndGradient()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        using var layer = Make(4, false, gen);
        Tensor x = randn([4, 64], generator: gen).to(ScalarType.BFloat16).requires_grad_(true);
        Tensor y = layer.forward(x);
        Assert.Equal(ScalarType.BFloat16, y.dtype);
        y.sum().backward();
        Assert.Equal(ScalarType.BFloat16, x.grad!.dtype);
        Tensor expected = ones([4, 48], ScalarType.BFloat16).matmul(layer.DequantizedWeight(ScalarType.BFloat16));
        Assert.Equal(TensorBits.Bf16(expected), TensorBits.Bf16(x.grad));
    }

    [Fact]
    public void GradientFlowsThroughTheFrozenLayerToAnEarlierTrainableParameter()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(5);
        using var layer = Make(4, false, gen);
        var a = nn.Parameter(randn([64, 64], generator: gen) * 0.1);
        Tensor x = randn([3, 64], generator: gen);
        Tensor h = x.matmul(a);
        layer.forward(h).pow(2).sum().backward();
        Tensor w = layer.DequantizedWeight(ScalarType.Float32);
        Tensor expected = x.t().matmul((2 * h.detach().matmul(w.t())).matmul(w));
        TensorAssert.Close(expected, a.grad!, rtol: 1e-4, atol: 1e-5);
    }

    [Fact]
    public void ReportsLogicalSizeAndStorage()
    {
        using var scope = NewDisposeScope();
        using var layer = Make(4, false, new Generator(1));
        Assert.Equal(48 * 64, layer.LogicalParameterCount);
        Assert.Equal(64, layer.InFeatures);
        Assert.Equal(48, layer.OutFeatures);
        Assert.Equal(layer.Weight.StorageBytes, layer.StorageBytes);
        Assert.True(layer.StorageBytes < 48 * 64); // well under one byte per weight
    }
}
