using FinQLoRA.Quantization;

namespace FinQLoRA.Tests.Quantization;

/// <summary>The one 4/8/16 check and the one nf4/fp4 parser.</summary>
public sealed class WeightBitsAndFourBitTypesTests
{
    [Theory]
    [InlineData(4)]
    [InlineData(8)]
    [InlineData(16)]
    public void SupportedWidthsPass(int bits) => Assert.Equal(bits, WeightBits.Require(bits));

    [Theory]
    [InlineData(3)]
    [InlineData(0)]
    [InlineData(32)]
    public void OtherWidthsAreRefusedNamingTheField(int bits)
    {
        var e = Assert.Throws<UserInputException>(() => WeightBits.Require(bits));
        Assert.Equal($"bits {bits} is not one of 4, 8, 16", e.Message);
        Assert.Throws<UserInputException>(() => new QuantizationOptions(Bits: bits).Validate());
    }

    [Fact]
    public void AWidthExistsOnlyForSupportedValuesAndReadsAsItsNumber()
    {
        WeightBits four = 4;
        Assert.Equal("4-bit", $"{four}-bit");
        Assert.True(four == 4 && four.IsQuantized && !((WeightBits)16).IsQuantized);
        Assert.Equal("bits 3 is not one of 4, 8, 16", Assert.Throws<UserInputException>(() => { WeightBits three = 3; }).Message);
        Assert.Throws<UserInputException>(() => new FinQLoRA.Training.TrainConfig { Bits = 2 });
    }

    [Theory]
    [InlineData("nf4", FourBitType.Nf4)]
    [InlineData("NF4", FourBitType.Nf4)]
    [InlineData("fp4", FourBitType.Fp4)]
    public void FourBitTypesParse(string text, FourBitType expected)
    {
        Assert.Equal(expected, FourBitTypes.Spellings.Parse(text, "quant"));
        Assert.Equal(text.ToLowerInvariant(), FourBitTypes.Spellings.Name(expected));
    }

    [Fact]
    public void AnUnknownFourBitTypeIsRefused() =>
        Assert.Equal("quant 'int4' is not one of nf4, fp4", Assert.Throws<UserInputException>(() => FourBitTypes.Spellings.Parse("int4", "quant")).Message);
}
