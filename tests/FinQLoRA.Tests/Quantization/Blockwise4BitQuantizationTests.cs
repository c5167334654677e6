using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization;

public sealed class Blockwise4BitQuantizationTests
{
    static Blockwise4BitQuantizationTests() => TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void PacksHighNibbleFirstAndPadsAnOddCountWithTheCodeOfZero()
    {
        using var scope = NewDisposeScope();
        // one block: absmax 1.0; codes 1.0 → 15, -1.0 → 0, 0.5 → 12 (0.4407 < 0.5 ≤ midpoint 0.50166)
        using var q = Quantizer.Quantize4Bit(tensor(new[] { 1.0f, -1.0f, 0.5f }).reshape(1, 3), FourBitType.Nf4, doubleQuant: false);
        Assert.Equal(new long[] { 2, 1 }, q.Packed.shape);
        // 0xF0 = (15 << 4) | 0; the pad nibble is the code of 0.0 (NF4 7): CUDA loads out-of-range elements as 0 and
        // quantizes them, and bitsandbytes' CPU backend pads the scaled values with 0.0 before the code search.
        Assert.Equal(new byte[] { 0xF0, 0xC7 }, TensorBits.Bytes(q.Packed));
        Assert.Equal(new[] { 1.0f }, TensorBits.Floats(q.Absmax!));

        using var f = Quantizer.Quantize4Bit(tensor(new[] { 1.0f, -1.0f, 0.5f }), FourBitType.Fp4, doubleQuant: false);
        // FP4: 1.0 → 3, -1.0 → 11, 0.5 → 5, pad 0.0 → 0
        Assert.Equal(new byte[] { 0x3B, 0x50 }, TensorBits.Bytes(f.Packed));
    }

    [Fact]
    public void CodesAtMidpointsThroughTheWholeQuantizer()
    {
        using var scope = NewDisposeScope();
        var m = FourBitCodebook.Nf4Midpoints;
        // absmax 1.0 makes the reciprocal exactly 1, so each value reaches the comparison unchanged
        var values = new List<float> { 1.0f };
        for (int i = 0; i < 15; i++) { values.Add(m[i]); values.Add(MathF.BitIncrement(m[i])); }
        values.Add(0f);
        using var q = Quantizer.Quantize4Bit(tensor(values.ToArray()), FourBitType.Nf4, doubleQuant: false);
        byte[] packed = TensorBits.Bytes(q.Packed);
        int Code(int i) => (i & 1) == 0 ? packed[i / 2] >> 4 : packed[i / 2] & 0xF;
        Assert.Equal(15, Code(0));
        for (int i = 0; i < 15; i++)
        {
            Assert.Equal(i, Code(1 + 2 * i));
            Assert.Equal(i + 1, Code(2 + 2 * i));
        }
        Assert.Equal(7, Code(31));
    }

    [Fact]
    public void LastShortBlockHasItsOwnAbsmaxOverItsValidElements()
    {
        using var scope = NewDisposeScope();
        // 130 elements = 64 + 64 + 2: the last block's absmax is max(|0.25|, |-0.125|), not padded with anything
        var data = new float[130];
        for (int i = 0; i < 128; i++) data[i] = (i % 7 - 3) * 0.5f;
        data[128] = 0.25f; data[129] = -0.125f;
        using var q = Quantizer.Quantize4Bit(tensor(data).reshape(13, 10), FourBitType.Nf4, doubleQuant: false);
        Assert.Equal(new[] { 1.5f, 1.5f, 0.25f }, TensorBits.Floats(q.Absmax!));
        Assert.Equal(65, q.Packed.numel());
        byte last = TensorBits.Bytes(q.Packed)[64];
        Assert.Equal(15, last >> 4);                                            // 0.25/0.25 = 1.0
        Assert.Equal(FourBitCodebook.EncodeNf4(-0.125f * (1f / 0.25f)), last & 0xF); // -0.5 → code 2 (-0.525)
    }

    [Theory]
    [InlineData(FourBitType.Nf4)]
    [InlineData(FourBitType.Fp4)]
    public void ValuesOnTheCodebookRoundTripExactly(FourBitType type)
    {
        using var scope = NewDisposeScope();
        var code = FourBitCodebook.Values(type).ToArray();
        var rng = new Random(3);
        // each block: scale s (a power of two, so code·s is exact) times codebook entries, with ±1 present so absmax = s
        int blocks = 9;
        var w = new float[blocks * 64 - 5];
        for (int i = 0; i < w.Length; i++)
        {
            float s = MathF.Pow(2, i / 64 - 4);
            w[i] = (i % 64 == 0 ? 1f : code[rng.Next(16)]) * s;
        }
        using var q = Quantizer.Quantize4Bit(tensor(w), type, doubleQuant: false);
        Assert.Equal(w.Select(BitConverter.SingleToUInt32Bits).Select(b => b & 0x7FFFFFFF),
            TensorBits.F32(q.Dequantize(ScalarType.Float32)).Select(b => b & 0x7FFFFFFF)); // -0.0 may come back as +0.0
    }

    [Fact]
    public void GaussianWeightRoundTripErrorIsNf4Sized()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(11);
        Tensor w = normal(0, 0.02, [256, 512], generator: gen);
        using var q = Quantizer.Quantize4Bit(w, FourBitType.Nf4);
        Tensor back = q.Dequantize(ScalarType.Float32);
        double rel = ((back - w).pow(2).mean().sqrt() / w.pow(2).mean().sqrt()).item<float>();
        Assert.InRange(rel, 0.05, 0.12); // torchsharp-notes §8 measured 0.092 for NF4 on N(0, 0.02)
        Assert.Equal(ScalarType.Float32, q.OriginalDtype);
        Assert.Equal(new long[] { 256, 512 }, q.Shape);
    }

    [Fact]
    public void StorageIs4Point127BitsPerParameterWithDoubleQuant()
    {
        using var scope = NewDisposeScope();
        Tensor w = randn(1024, 1024);
        using var dq = Quantizer.Quantize4Bit(w, FourBitType.Nf4, doubleQuant: true);
        using var plain = Quantizer.Quantize4Bit(w, FourBitType.Nf4, doubleQuant: false);
        double n = w.numel();
        // tables (16 + 256 floats and the offset) are per tensor, not per parameter
        Assert.Equal(4 + 8.0 / 64 + 32.0 / (64 * 256), (dq.StorageBytes - 16 * 4 - 256 * 4 - 4) * 8 / n, 6);
        Assert.Equal(4.5, (plain.StorageBytes - 16 * 4) * 8 / n, 6);
    }

    [Fact]
    public void QuantizesABFloat16WeightOnItsOwnDevice()
    {
        using var scope = NewDisposeScope();
        Tensor w = randn(64, 96).to(ScalarType.BFloat16);
        using var q = Quantizer.Quantize(w, QuantizationOptions.Nf4);
        Assert.Equal(ScalarType.BFloat16, q.OriginalDtype);
        Assert.Equal(DeviceType.CPU, q.Device.type);
        using var q32 = Quantizer.Quantize4Bit(w.to(ScalarType.Float32), FourBitType.Nf4);
        Assert.Equal(TensorBits.Bytes(((Blockwise4BitTensor)q).Packed), TensorBits.Bytes(q32.Packed));
    }

    [Fact]
    public void RejectsBadOptions()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<UserInputException>(() => Quantizer.Quantize(randn(4, 64), new QuantizationOptions(Bits: 3)));
        Assert.Throws<UserInputException>(() => Quantizer.Quantize(randn(4, 64), new QuantizationOptions(BlockSize: 100)));
        Assert.Throws<UserInputException>(() => Quantizer.Quantize(randn(4, 64), new QuantizationOptions(Bits: 16)));
        Assert.Throws<UserInputException>(() => Quantizer.Quantize(ones(4, 64, ScalarType.Int32), QuantizationOptions.Nf4));
    }
}
