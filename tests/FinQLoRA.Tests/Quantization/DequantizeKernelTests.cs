using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization;

public sealed class DequantizeKernelTests
{
    static DequantizeKernelTests() => TorchNativeLoader.EnsureLoaded();

    public static TheoryData<string, FourBitType, bool, int, int> Cases()
    {
        var data = new TheoryData<string, FourBitType, bool, int, int>();
        foreach (var path in new[] { "Avx512", "Avx2", "Scalar" })
        foreach (var type in new[] { FourBitType.Nf4, FourBitType.Fp4 })
        foreach (bool dq in new[] { false, true })
        {
            data.Add(path, type, dq, 96, 640);  // whole blocks, 960 blocks (several parallel ranges, 4 nested blocks)
            data.Add(path, type, dq, 37, 129);  // 4773 elements: odd, last block of 37
        }
        data.Add("Avx512", FourBitType.Nf4, true, 300, 1024); // crosses the parallel threshold
        return data;
    }

    /// <summary>The fused kernel against the torch-op path (fp32 then <c>.to(dtype)</c>), bit for bit, for each instruction set.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void KernelMatchesTorchBitForBit(string pathName, FourBitType type, bool doubleQuant, int rows, int cols)
    {
        var path = Enum.Parse<DequantKernelPath>(pathName);
        if (path == DequantKernelPath.Avx512 && !Avx512BW.IsSupported || path == DequantKernelPath.Avx2 && !Avx2.IsSupported) return;
        using var scope = NewDisposeScope();
        // heavy tails so blocks span several magnitudes, and bf16 rounding sees many mantissa patterns
        Tensor w = randn([rows, cols], generator: new Generator((ulong)(rows * 1000 + cols))).pow(3) * 0.05;
        using var q = Quantizer.Quantize4Bit(w, type, doubleQuant: doubleQuant);
        Tensor reference = q.DequantizeWithTorchOps(ScalarType.Float32);
        Assert.Equal(TensorBits.F32(reference), TensorBits.F32(q.DequantizeWithKernel(ScalarType.Float32, path)));
        Assert.Equal(TensorBits.Bf16(reference), TensorBits.Bf16(q.DequantizeWithKernel(ScalarType.BFloat16, path)));
        Assert.Equal(TensorBits.Bf16(reference), TensorBits.Bf16(q.DequantizeWithTorchOps(ScalarType.BFloat16)));
        Assert.Equal(new long[] { rows, cols }, q.Dequantize(ScalarType.BFloat16).shape);
        Tensor reused = full([rows, cols], float.NaN, ScalarType.BFloat16); // every element must be overwritten
        q.DequantizeInto(reused);
        Assert.Equal(TensorBits.Bf16(reference), TensorBits.Bf16(reused));
        // bf16 values held in fp32 (the widened CPU matmul's weight): the bf16 dequantization, exactly widened
        Tensor widened = full([rows, cols], float.NaN, ScalarType.Float32);
        q.DequantizeInto(widened, path, bf16Values: true);
        Assert.Equal(TensorBits.F32(reference.to(ScalarType.BFloat16).to(ScalarType.Float32)), TensorBits.F32(widened));
    }

    [Fact]
    public unsafe void TorchPathMatchesTheScalarDefinition()
    {
        using var scope = NewDisposeScope();
        Tensor w = randn(33, 65, generator: new Generator(2));
        using var q = Quantizer.Quantize4Bit(w, FourBitType.Nf4, doubleQuant: false);
        long n = q.ElementCount;
        var expected = new float[n];
        fixed (float* e = expected)
        fixed (float* code = FourBitCodebook.Nf4)
            Blockwise4BitCodec.Dequantize((byte*)TensorMemory.DataPointer(q.Packed), (float*)TensorMemory.DataPointer(q.Absmax!), n, 64, new ReadOnlySpan<float>(code, 16), e);
        Assert.Equal(expected.Select(BitConverter.SingleToUInt32Bits), TensorBits.F32(q.DequantizeWithTorchOps(ScalarType.Float32)));
    }

    /// <summary>Rounding fp32 → bf16 against torch's <c>.to(bfloat16)</c> on the cases that matter: ties to even, carries, overflow, subnormals.</summary>
    [Fact]
    public void Bf16RoundingMatchesTorch()
    {
        using var scope = NewDisposeScope();
        var rng = new Random(9);
        var bits = new List<uint>
        {
            0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001, // ties (even stays, odd rounds up), just below/above
            0x3FFF8000, 0x7F7FFFFF, 0x7F7F8000, 0xFF7FFFFF, // carry into the exponent, overflow to ±inf
            0x00008000, 0x00018000, 0x00000001, 0x80008000, // subnormals
            0x7F800000, 0xFF800000, 0x00000000, 0x80000000, // ±inf, ±0
        };
        for (int i = 0; i < 20000; i++) bits.Add((uint)rng.NextInt64(0, 0x7F800000) | (uint)(rng.Next(2) << 31));
        float[] values = bits.Select(BitConverter.UInt32BitsToSingle).ToArray();
        ushort[] expected = TensorBits.Bf16(tensor(values));
        Assert.Equal(expected, values.Select(BFloat16Rounding.Round).ToArray());
        for (int i = 0; i + 16 <= values.Length; i += 16)
        {
            Vector512<uint> v512 = BFloat16Rounding.Round(Vector512.Create(values, i));
            Vector256<uint> v256a = BFloat16Rounding.Round(Vector256.Create(values, i));
            Vector256<uint> v256b = BFloat16Rounding.Round(Vector256.Create(values, i + 8));
            for (int k = 0; k < 16; k++)
            {
                Assert.Equal(expected[i + k], (ushort)v512[k]);
                Assert.Equal(expected[i + k], (ushort)(k < 8 ? v256a[k] : v256b[k - 8]));
            }
        }
        Assert.Equal(BFloat16Rounding.CanonicalNaN, BFloat16Rounding.Round(float.NaN));
        Assert.Equal(BFloat16Rounding.CanonicalNaN, (ushort)BFloat16Rounding.Round(Vector512.Create(float.NaN))[3]);
    }
}
