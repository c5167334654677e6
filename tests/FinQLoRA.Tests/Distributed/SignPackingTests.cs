using FinQLoRA.Distributed;
using TorchSharp;

namespace FinQLoRA.Tests.Distributed;

public sealed class SignPackingTests
{
    static SignPackingTests() => FinQLoRA.Runtime.TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void FirstElementIsTheMostSignificantBit()
    {
        // + − + − + + − +  →  1010 1101 = 0xAD;  then − × 7, + → 0000 0001
        var signs = torch.tensor(new[] { true, false, true, false, true, true, false, true, false, false, false, false, false, false, false, true });
        using var packed = SignPacking.Pack(signs);
        Assert.Equal(new byte[] { 0xAD, 0x01 }, packed.data<byte>().ToArray());
    }

    [Fact]
    public void UnpackInvertsPack()
    {
        var signs = torch.rand(64).ge(0.5);
        using var roundTrip = SignPacking.Unpack(SignPacking.Pack(signs));
        Assert.Equal(signs.data<bool>().ToArray(), roundTrip.data<bool>().ToArray());
    }

    [Fact]
    public void PartialBytesAreRejected() =>
        Assert.Throws<ArgumentException>(() => SignPacking.Pack(torch.ones(12, torch.ScalarType.Bool)));
}
