using System.Runtime.Intrinsics.X86;
using FinQLoRA.Quantization;
using FinQLoRA.Quantization.Gemv;
using FinQLoRA.Runtime;
using FinQLoRA.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization.Gemv;

/// <summary>
/// The fused gemv against an independent path: torch's matmul over the dequantized weight (4-bit), and the existing
/// LLM.int8 forward (<see cref="LlmInt8.Linear"/>, whose activation quantization the kernel must reproduce), for every
/// instruction set the CPU has, 1–8 rows, shapes the vector paths take and shapes only the scalar path takes.
/// <para>In the collection of the classes that flip <c>FINQLORA_FUSED_GEMV</c> (read per call), so its Applies checks never
/// sees another class's "off".</para>
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class FusedGemvTests
{
    static FusedGemvTests() => TorchNativeLoader.EnsureLoaded();

    private static bool Unsupported(DequantKernelPath path) =>
        path == DequantKernelPath.Avx512 && !Avx512BW.IsSupported || path == DequantKernelPath.Avx2 && !(Avx2.IsSupported && Fma.IsSupported);

    public static TheoryData<string, FourBitType, bool, int, int, int> FourBitCases()
    {
        var data = new TheoryData<string, FourBitType, bool, int, int, int>();
        foreach (var path in new[] { "Avx512", "Avx2", "Scalar" })
        foreach (var type in new[] { FourBitType.Nf4, FourBitType.Fp4 })
        foreach (bool dq in new[] { false, true })
        {
            data.Add(path, type, dq, 1, 37, 192);   // odd output count, whole groups of 32, blocks of 64 across rows
            data.Add(path, type, dq, 5, 19, 100);   // 100 inputs: blocks straddle rows, rows start mid-byte (scalar)
        }
        foreach (int rows in Enumerable.Range(1, 8)) data.Add("Avx512", FourBitType.Nf4, true, rows, 300, 1024); // crosses the parallel threshold
        foreach (int rows in Enumerable.Range(1, 4)) data.Add("Avx512", FourBitType.Fp4, false, rows, 39 - rows, 256); // four outputs at a time, then tails of 2, 1, 0 and 3 outputs
        data.Add("Avx512", FourBitType.Nf4, true, 4, 1030, 512); // threaded: each thread's range ends in a tail
        data.Add("Avx2", FourBitType.Nf4, true, 8, 300, 1024);
        return data;
    }

    [Theory]
    [MemberData(nameof(FourBitCases))]
    public void FourBitEqualsDequantizeThenMatmul(string pathName, FourBitType type, bool doubleQuant, int rows, int outF, int inF)
    {
        var path = Enum.Parse<DequantKernelPath>(pathName);
        if (Unsupported(path)) return;
        using var scope = NewDisposeScope();
        var gen = new Generator((ulong)(outF * 1000 + inF + rows));
        Tensor w = randn([outF, inF], generator: gen).pow(3) * 0.05; // heavy tails: blocks of several magnitudes
        using var q = Quantizer.Quantize4Bit(w, type, doubleQuant: doubleQuant);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            Tensor x = randn([rows, inF], generator: gen).to(dtype);
            Tensor weight = q.Dequantize(dtype).to(ScalarType.Float32);
            AssertWithinSummationNoise(x, weight, FusedGemv.Multiply(x, q, 0, path: path));
        }
    }

    /// <summary>A one-hot row reads one weight per output with no summation at all, so every weight the kernel sees
    /// must be bit for bit the dequantized one (bf16 inputs: the bf16-rounded code·absmax).</summary>
    /// <para>1–4 rows take the AVX-512 loop over four outputs at a time and the one-output loop for the last 1–3
    /// outputs (37, 38, 39 outputs); 5–8 rows the one-output loop alone.</para>
    [Theory]
    [InlineData("Avx512", true, 37, 192, 8)]
    [InlineData("Avx512", false, 37, 192, 8)]
    [InlineData("Avx512", true, 37, 192, 1)]
    [InlineData("Avx512", true, 38, 192, 2)]
    [InlineData("Avx512", false, 39, 192, 3)]
    [InlineData("Avx512", true, 39, 192, 4)]
    [InlineData("Avx512", true, 40, 256, 4)]
    [InlineData("Avx2", true, 37, 192, 8)]
    [InlineData("Scalar", true, 19, 100, 8)]
    public void OneHotRowsReadEveryWeightExactly(string pathName, bool doubleQuant, int outF, int inF, int rowsPerCall)
    {
        var path = Enum.Parse<DequantKernelPath>(pathName);
        if (Unsupported(path)) return;
        using var scope = NewDisposeScope();
        Tensor w = randn([outF, inF], generator: new Generator(7)).pow(3) * 0.05;
        using var q = Quantizer.Quantize4Bit(w, FourBitType.Nf4, doubleQuant: doubleQuant);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            Tensor weight = q.Dequantize(dtype);
            for (int first = 0; first < inF; first += rowsPerCall)
            {
                int n = Math.Min(rowsPerCall, inF - first);
                Tensor x = zeros([n, inF], dtype);
                for (int r = 0; r < n; r++) x[r, first + r] = 1.0f;
                Tensor y = FusedGemv.Multiply(x, q, 0, path: path);                        // [n, out]
                Tensor expected = weight.narrow(1, first, n).t();                           // [n, out]
                Assert.Equal(FusedGemvTests.Bits(expected.contiguous()), FusedGemvTests.Bits(y.contiguous()));
            }
        }
    }

    public static TheoryData<string, int, int, int, double> Int8Cases()
    {
        var data = new TheoryData<string, int, int, int, double>();
        foreach (var path in new[] { "Avx512", "Avx2", "Scalar" })
        foreach (double threshold in new[] { 0.0, 6.0 })
        {
            data.Add(path, 1, 37, 192, threshold);
            data.Add(path, 3, 19, 100, threshold); // a tail after the last whole vector step
        }
        foreach (int rows in Enumerable.Range(1, 8)) data.Add("Avx512", rows, 300, 1024, 6.0);
        return data;
    }

    [Theory]
    [MemberData(nameof(Int8Cases))]
    public void Int8EqualsTheLlmInt8Forward(string pathName, int rows, int outF, int inF, double threshold)
    {
        var path = Enum.Parse<DequantKernelPath>(pathName);
        if (Unsupported(path)) return;
        using var scope = NewDisposeScope();
        var gen = new Generator((ulong)(outF * 7 + inF + rows));
        using var q = Quantizer.QuantizeInt8(randn([outF, inF], generator: gen) * 0.05);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            Tensor x = randn([rows, inF], generator: gen);
            x[0, 3] = 9.5f; // an outlier column with threshold 6 (a plain value without)
            x = x.to(dtype);
            Tensor expected = LlmInt8.Linear(x, q, threshold);
            Tensor actual = FusedGemv.Multiply(x, q, threshold, path: path);
            Assert.Equal(dtype, actual.dtype);
            if (threshold == 0 && dtype == ScalarType.Float32)
                // int8 products summed exactly by both (127²·in < 2²⁴) and scaled by the same fp32 operations
                Assert.Equal(FusedGemvTests.Bits(expected.contiguous()), FusedGemvTests.Bits(actual.contiguous()));
            else
                AssertClose(expected.to(ScalarType.Float32), actual, Bound(x, q.Dequantize(ScalarType.Float32)), dtype);
        }
    }

    [Fact]
    public void AppliesOnlyToSmallGradientFreeCpuProducts()
    {
        using var scope = NewDisposeScope();
        using var q = Quantizer.Quantize4Bit(randn([16, 64]), FourBitType.Nf4);
        Assert.True(FusedGemv.Applies(randn([2, 4, 64]), q));
        Assert.False(FusedGemv.Applies(randn([9, 64]), q));                       // a prefill: dequantize-then-matmul
        Assert.False(FusedGemv.Applies(randn([1, 64]).to(ScalarType.Float16), q));
        Assert.False(FusedGemv.Applies(randn([1, 64]).requires_grad_(), q));    // training keeps the autograd node
        using (no_grad()) Assert.True(FusedGemv.Applies(randn([1, 64]).requires_grad_(), q));
    }

    /// <summary>The bit patterns of a bf16 or fp32 tensor, for exact comparisons.</summary>
    internal static uint[] Bits(Tensor t) =>
        t.dtype == ScalarType.BFloat16 ? TensorBits.Bf16(t).Select(b => (uint)b).ToArray() : TensorBits.F32(t);

    /// <summary>Σ|x|·|w| per output: the scale of fp32 summation-order differences.</summary>
    internal static Tensor Bound(Tensor x, Tensor weight) =>
        x.to(ScalarType.Float32).abs().reshape(-1, weight.shape[1]).matmul(weight.abs().t()).reshape([.. x.shape[..^1], weight.shape[0]]);

    private static void AssertWithinSummationNoise(Tensor x, Tensor weight32, Tensor actual)
    {
        Assert.Equal(x.dtype, actual.dtype);
        Tensor expected = x.to(ScalarType.Float32).matmul(weight32.t());
        AssertClose(expected, actual, Bound(x, weight32), x.dtype);
    }

    /// <summary>fp32: within 1e-5 of Σ|x·w| (orders of magnitude above fp32 summation noise at these sizes, far below
    /// a wrong weight or scale). bf16: additionally one bf16 step of the value (the two fp32 sums may round to
    /// neighbouring bf16 values).</summary>
    internal static void AssertClose(Tensor expected32, Tensor actual, Tensor bound, ScalarType dtype)
    {
        Tensor diff = (actual.to(ScalarType.Float32) - expected32).abs();
        Tensor allowed = bound * 1e-5 + 1e-30;
        if (dtype == ScalarType.BFloat16) allowed = allowed + expected32.abs() * Math.Pow(2, -8);
        Tensor excess = (diff - allowed).max();
        Assert.True(excess.item<float>() <= 0, $"largest excess over the allowed difference: {excess.item<float>()} (max diff {diff.max().item<float>()})");
    }
}
