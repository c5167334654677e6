using System.Runtime.Intrinsics.X86;
using FinQLoRA.Models;
using FinQLoRA.Quantization.Gemv;
using FinQLoRA.Runtime;
using FinQLoRA.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization.Gemv;

/// <summary>
/// The dense bf16 gemv (the decode-time head) against torch's fp32 matmul of the same bf16 values, within fp32
/// summation-order noise plus one bf16 step; one-hot rows that read every weight bit for bit; and where the decode
/// path takes it. One test flips <c>FINQLORA_FUSED_GEMV</c> (read per call), so the class runs alone.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class DenseGemvTests
{
    static DenseGemvTests() => TorchNativeLoader.EnsureLoaded();

    [Theory]
    [InlineData(1, 37, 192)]
    [InlineData(3, 37, 192)]
    [InlineData(2, 39, 256)]
    [InlineData(4, 39, 256)]
    [InlineData(8, 37, 192)]
    [InlineData(1, 300, 1024)] // crosses the parallel threshold
    [InlineData(4, 300, 1024)]
    [InlineData(8, 300, 1024)]
    public void EqualsTheBf16Matmul(int rows, int outF, int inF)
    {
        if (!Avx512F.IsSupported) return;
        using var scope = NewDisposeScope();
        var gen = new Generator((ulong)(rows * 7919 + outF + inF));
        Tensor w = (randn([outF, inF], generator: gen).pow(3) * 0.05).to(ScalarType.BFloat16);
        Tensor x = randn([rows, inF], generator: gen).to(ScalarType.BFloat16);
        Tensor actual = DenseGemv.Multiply(x, w);
        Assert.Equal(ScalarType.BFloat16, actual.dtype);
        Tensor w32 = w.to(ScalarType.Float32);
        Tensor expected = x.to(ScalarType.Float32).matmul(w32.t());
        FusedGemvTests.AssertClose(expected, actual, FusedGemvTests.Bound(x, w32), ScalarType.BFloat16);
    }

    /// <summary>1–4 rows take the loop over four outputs at a time and the one-output loop for the last 1–3 outputs
    /// (37–39 outputs); 8 rows the one-output loop alone.</summary>
    [Theory]
    [InlineData(8, 37)]
    [InlineData(1, 37)]
    [InlineData(2, 38)]
    [InlineData(3, 39)]
    [InlineData(4, 39)]
    [InlineData(4, 40)]
    public void OneHotRowsReadEveryWeightExactly(int rows, int outF)
    {
        if (!Avx512F.IsSupported) return;
        using var scope = NewDisposeScope();
        Tensor w = (randn([outF, 64], generator: new Generator(3)) * 0.05).to(ScalarType.BFloat16);
        for (int first = 0; first < 64; first += rows)
        {
            int n = Math.Min(rows, 64 - first);
            Tensor x = zeros([n, 64], ScalarType.BFloat16);
            for (int r = 0; r < n; r++) x[r, first + r] = 1.0f;
            Tensor expected = w.narrow(1, first, n).t().contiguous();
            Assert.Equal(FusedGemvTests.Bits(expected), FusedGemvTests.Bits(DenseGemv.Multiply(x, w).contiguous()));
        }
    }

    [Fact]
    public void TakesOnlyGradientFreeDecodeRowsOfWholeGroups()
    {
        if (!Avx512F.IsSupported) return;
        using var scope = NewDisposeScope();
        Tensor w = randn([16, 64]).to(ScalarType.BFloat16);
        Tensor row = randn([1, 1, 64]).to(ScalarType.BFloat16);
        Assert.True(DenseGemv.Applies(row, w));
        Assert.True(DenseGemv.Supports(randn([2, 4, 64]).to(ScalarType.BFloat16), w));
        Assert.False(DenseGemv.Supports(randn([9, 64]).to(ScalarType.BFloat16), w));           // a prefill: the matmul
        Assert.False(DenseGemv.Supports(row.to(ScalarType.Float32), w));                        // fp32 input
        Assert.False(DenseGemv.Supports(row, w.to(ScalarType.Float32)));                        // fp32 weight
        Assert.False(DenseGemv.Supports(row, w.t().contiguous().t()));                           // transposed storage
        Assert.False(DenseGemv.Supports(randn([1, 48]).to(ScalarType.BFloat16), randn([16, 48]).to(ScalarType.BFloat16))); // not whole groups of 32
        Assert.False(DenseGemv.Supports(row.clone().requires_grad_(true), w));                  // a gradient wanted
        using (no_grad()) Assert.True(DenseGemv.Supports(row.clone().requires_grad_(true), w)); // ... unless grad mode is off
        // the rows libtorch's matmul is faster for: every decode size on widening CPUs, one row where bf16 is native
        Assert.Equal(CpuMatmulPrecision.MatmulDType(row) == ScalarType.BFloat16 ? 1 : FusedGemv.MaxRows, DenseGemv.RowLimit(row));
    }

    /// <summary>A decode row through a dense layer goes through the kernel (bit for bit its output), and
    /// <c>FINQLORA_FUSED_GEMV=off</c> gives the matmul back.</summary>
    [Fact]
    public void DenseLinearTakesItAtDecode()
    {
        if (!Avx512F.IsSupported) return;
        using var scope = NewDisposeScope();
        Tensor w = (randn([40, 256], generator: new Generator(5)) * 0.05).to(ScalarType.BFloat16);
        using var layer = new DenseLinear(w.clone());
        Tensor x = randn([1, 1, 256], generator: new Generator(6)).to(ScalarType.BFloat16);
        using (no_grad())
        {
            Assert.Equal(FusedGemvTests.Bits(DenseGemv.Multiply(x, w).contiguous()), FusedGemvTests.Bits(layer.forward(x).contiguous()));
            string? before = Environment.GetEnvironmentVariable(FusedGemv.EnvironmentVariable);
            Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, "off");
            try
            {
                Assert.False(DenseGemv.Applies(x, w));
                Tensor matmul = layer.forward(x);
                FusedGemvTests.AssertClose(x.to(ScalarType.Float32).matmul(w.to(ScalarType.Float32).t()), matmul,
                    FusedGemvTests.Bound(x, w.to(ScalarType.Float32)), ScalarType.BFloat16);
            }
            finally
            {
                Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, before);
            }
        }
    }
}
