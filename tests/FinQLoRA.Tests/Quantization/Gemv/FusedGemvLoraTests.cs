using FinQLoRA.Adapters;
using FinQLoRA.Quantization;
using FinQLoRA.Quantization.Gemv;
using FinQLoRA.Runtime;
using FinQLoRA.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization.Gemv;

/// <summary>
/// The LoRA delta added inside the fused gemv (<see cref="LoraLinear"/> over a quantized base, one adapter or a stack
/// with a different adapter per row) against the unfused composition computed here: the unfused base product, plus
/// s·B·(A·x) in fp32 for the row's own adapter, cast to the input's dtype.
/// <para>In the collection of the classes that flip <c>FINQLORA_FUSED_GEMV</c> (read per call), so its "forward takes the same path" check never
/// sees another class's "off".</para>
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class FusedGemvLoraTests
{
    static FusedGemvLoraTests() => TorchNativeLoader.EnsureLoaded();

    private const int In = 256, Out = 200;

    private static LoraLinear Projection(int bits, Generator g)
    {
        Tensor w = randn([Out, In], generator: g) * 0.05;
        QuantizedTensor q = bits == 4 ? Quantizer.Quantize4Bit(w, FourBitType.Nf4) : Quantizer.QuantizeInt8(w);
        var lora = new LoraLinear(new QuantizedLinear(q));
        lora.AddAdapter("a", new LoraConfig { Rank = 4, Alpha = 16 }, g);
        lora.AddAdapter("b", new LoraConfig { Rank = 8, Alpha = 8 }, g);
        lora.AddAdapter("d", new LoraConfig { Rank = 2, Alpha = 4, UseDora = true }, g);
        using var noGrad = no_grad();
        foreach (var adapter in lora.Adapters.Values) adapter.B.copy_(randn(adapter.B.shape, generator: g) * 0.2);
        lora.eval();
        return lora;
    }

    /// <summary>Row r of x [rows, in] with adapter <paramref name="adapters"/>[r] (null: the base), unfused, in fp32
    /// before the last cast, with the bound of its summation noise.</summary>
    private static (Tensor Expected, Tensor Bound) Unfused(LoraLinear lora, Tensor x, string?[] adapters)
    {
        var q = (QuantizedLinear)lora.BaseLayer;
        Tensor base32 = QuantizedMatmulFunction.Forward(x, q.Weight, q.Int8Threshold).to(ScalarType.Float32);
        Tensor w32 = q.DequantizedWeight(ScalarType.Float32);
        Tensor x32 = x.to(ScalarType.Float32);
        var expected = new List<Tensor>();
        var bound = new List<Tensor>();
        for (int r = 0; r < adapters.Length; r++)
        {
            Tensor row = x32.narrow(0, r, 1);
            Tensor b = FusedGemvTests.Bound(row, w32);
            Tensor y = base32.narrow(0, r, 1);
            if (adapters[r] is { } name)
            {
                var a = lora.Adapters[name];
                y = y + nn.functional.linear(nn.functional.linear(row, a.A), a.B) * a.Scaling;
                b = b + row.abs().matmul(a.A.abs().t()).matmul(a.B.abs().t()) * a.Scaling;
            }
            expected.Add(y);
            bound.Add(b);
        }
        return (cat(expected.ToArray(), 0), cat(bound.ToArray(), 0));
    }

    [Theory]
    [InlineData(4, "bf16")]
    [InlineData(4, "fp32")]
    [InlineData(8, "bf16")]
    [InlineData(8, "fp32")]
    public void OneAdapterInTheSamePassEqualsBasePlusDelta(int bits, string dtypeName)
    {
        var dtype = dtypeName == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var g = new Generator(11);
        using var lora = Projection(bits, g);
        int limit = FusedGemv.RowLimit(zeros([1, In], dtype), ((QuantizedLinear)lora.BaseLayer).Weight);
        foreach (int rows in new[] { 1, 3, limit })
        {
            Tensor x = randn([rows, In], generator: g).to(dtype);
            lora.ActiveAdapter = "a";
            Tensor fused = lora.FusedGemvForward(x) ?? throw new Xunit.Sdk.XunitException("the fused path did not take the active adapter");
            var (expected, bound) = Unfused(lora, x, Enumerable.Repeat<string?>("a", rows).ToArray());
            FusedGemvTests.AssertClose(expected, fused, bound, dtype);
            Assert.Equal(FusedGemvTests.Bits(fused), FusedGemvTests.Bits(lora.forward(x))); // forward takes the same path
        }
        lora.ActiveAdapter = "d";
        Assert.Null(lora.FusedGemvForward(randn([1, In]))); // DoRA keeps the unfused path
    }

    [Theory]
    [InlineData(4, "bf16", 4, 1)]
    [InlineData(4, "fp32", 2, 3)]
    [InlineData(4, "bf16", 4, 2)] // 8 rows: the 4-bit kernel's second pass (rows 4-7: a, a, b, b) reads its rows' own adapters
    [InlineData(8, "bf16", 4, 1)]
    [InlineData(8, "fp32", 2, 3)]
    public void MixedAdaptersPerRowEqualEachRowUnfused(int bits, string dtypeName, int batch, int tokens)
    {
        var dtype = dtypeName == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var g = new Generator(12);
        using var lora = Projection(bits, g);
        var selection = new LoraRowSelection();
        string?[] order = [null, "a", "b"];
        using var stacked = StackedLora.Build(lora, order, selection);
        lora.Stacked = stacked;
        string?[] perBatchRow = batch == 4 ? ["b", null, "a", "b"] : ["a", "b"];
        selection.Rows = tensor(perBatchRow.Select(a => (long)Array.IndexOf(order, a)).ToArray());
        Tensor x = randn([batch, tokens, In], generator: g).to(dtype);
        Tensor fused = lora.FusedGemvForward(x) ?? throw new Xunit.Sdk.XunitException("the fused path did not take the stack");
        Assert.Equal(new long[] { batch, tokens, Out }, fused.shape);
        string?[] perRow = perBatchRow.SelectMany(a => Enumerable.Repeat(a, tokens)).ToArray();
        var (expected, bound) = Unfused(lora, x.reshape(batch * tokens, In), perRow);
        FusedGemvTests.AssertClose(expected, fused.reshape(batch * tokens, Out), bound, dtype);

        using var withDora = StackedLora.Build(lora, [null, "a", "d"], selection);
        lora.Stacked = withDora;
        Assert.Null(lora.FusedGemvForward(x)); // a DoRA row scale: the stack's own path
        lora.Stacked = null;
    }
}
