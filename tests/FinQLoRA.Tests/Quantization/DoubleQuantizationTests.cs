using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization;

public sealed class DoubleQuantizationTests
{
    static DoubleQuantizationTests() => TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void TinyCaseByHand()
    {
        using var scope = NewDisposeScope();
        // three blocks of 64 with absmax 1, 2, 3 → offset 2; absmax − offset = -1, 0, 1 → absmax2 = 1;
        // codes: -1 → 0 (dyn[0] = -0.99296875), 0 → 127, 1 → 255;
        // decoded: -0.99296875·1 + 2 = 1.00703125, 0·1 + 2 = 2, 1·1 + 2 = 3
        var w = new float[192];
        w[0] = 1f; w[64] = -2f; w[128] = 3f;
        using var q = Quantizer.Quantize4Bit(tensor(w), FourBitType.Nf4, doubleQuant: true);
        Assert.True(q.IsDoubleQuantized);
        Assert.Equal(2f, q.NestedOffset);
        Assert.Equal(new byte[] { 0, 127, 255 }, TensorBits.Bytes(q.AbsmaxCodes!));
        Assert.Equal(new[] { 1f }, TensorBits.Floats(q.NestedAbsmax!));
        Assert.Equal(new[] { 1.00703125f, 2f, 3f }, TensorBits.Floats(q.BlockAbsmax()));
    }

    [Fact]
    public void DecodedScalesAreCloseAndFollowTheBitsandbytesFormula()
    {
        using var scope = NewDisposeScope();
        Tensor w = normal(0, 0.02, [300, 256], generator: new Generator(5)); // 1200 blocks → 5 nested blocks, last short
        using var dq = Quantizer.Quantize4Bit(w, FourBitType.Nf4, doubleQuant: true);
        using var plain = Quantizer.Quantize4Bit(w, FourBitType.Nf4, doubleQuant: false);
        float[] exact = TensorBits.Floats(plain.Absmax!);
        float[] decoded = TensorBits.Floats(dq.BlockAbsmax());
        byte[] codes = TensorBits.Bytes(dq.AbsmaxCodes!);
        float[] absmax2 = TensorBits.Floats(dq.NestedAbsmax!);
        Assert.Equal(5, absmax2.Length);
        Assert.Equal((float)exact.Average(v => (double)v), dq.NestedOffset);
        var dyn = DynamicMap.Values;
        for (int i = 0; i < exact.Length; i++)
        {
            float formula = dyn[codes[i]] * absmax2[i / 256];
            Assert.Equal(formula + dq.NestedOffset, decoded[i]);
            // the 8-bit dynamic map's step near ±1 is 1/64 of absmax2: the scale error stays below that
            Assert.True(MathF.Abs(decoded[i] - exact[i]) <= absmax2[i / 256] / 64, $"block {i}");
        }
        // the packed codes are quantized with the exact absmax, independent of double quantization
        Assert.Equal(TensorBits.Bytes(plain.Packed), TensorBits.Bytes(dq.Packed));
    }
}
