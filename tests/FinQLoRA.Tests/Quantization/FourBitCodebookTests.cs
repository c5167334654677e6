using FinQLoRA.Quantization;
using Xunit;

namespace FinQLoRA.Tests.Quantization;

public sealed class FourBitCodebookTests
{
    [Fact]
    public void Nf4TableIsTheBitsandbytesTable()
    {
        // get_4bit_type("nf4") as listed in reference-algorithms.md §1
        double[] expected =
        [
            -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
            -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
            0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
        ];
        Assert.Equal(expected.Select(v => (float)v), FourBitCodebook.Nf4.ToArray());
    }

    [Fact]
    public void Nf4MidpointsLieBetweenNeighbouringCodes()
    {
        var v = FourBitCodebook.Nf4;
        var m = FourBitCodebook.Nf4Midpoints;
        for (int i = 0; i < 15; i++)
        {
            Assert.True(v[i] < m[i] && m[i] < v[i + 1], $"midpoint {i}");
            Assert.Equal((v[i] + v[i + 1]) / 2.0, m[i], 6);
        }
    }

    [Fact]
    public void ValueExactlyOnAMidpointTakesTheLowerCodeAndTheNextFloatUpTheUpperOne()
    {
        var m = FourBitCodebook.Nf4Midpoints;
        for (int i = 0; i < 15; i++)
        {
            Assert.Equal(i, FourBitCodebook.EncodeNf4(m[i]));
            Assert.Equal(i + 1, FourBitCodebook.EncodeNf4(MathF.BitIncrement(m[i])));
            Assert.Equal(i, FourBitCodebook.EncodeNf4(MathF.BitDecrement(m[i])));
        }
        Assert.Equal(0, FourBitCodebook.EncodeNf4(-1f));
        Assert.Equal(7, FourBitCodebook.EncodeNf4(0f));
        Assert.Equal(15, FourBitCodebook.EncodeNf4(1f));
        Assert.Equal(0, FourBitCodebook.EncodeNf4(float.NaN)); // CUDA: every comparison false
    }

    [Fact]
    public void Fp4TableIsE2m1DividedByTwelveWithSignBit3()
    {
        float[] magnitudes = [0f, 0.0625f, 8f, 12f, 4f, 6f, 2f, 3f];
        var fp4 = FourBitCodebook.Fp4;
        for (int c = 0; c < 8; c++)
        {
            Assert.Equal(magnitudes[c] / 12f, fp4[c]);
            Assert.Equal(-magnitudes[c] / 12f, fp4[c + 8]);
        }
        Assert.True(float.IsNegative(fp4[8])); // code 8 is -0.0
        Assert.Equal(1.0f, fp4[3]);
    }

    [Fact]
    public void Fp4ThresholdsAreStrictAndMapToTheSortedMagnitudes()
    {
        var t = FourBitCodebook.Fp4Thresholds;
        float[] thresholds = [0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f];
        Assert.Equal(thresholds, t.ToArray());
        // codes of the magnitudes in ascending order: 0, 1/192, 1/6, 1/4, 1/3, 1/2, 2/3, 1
        byte[] ascending = [0, 1, 6, 7, 4, 5, 2, 3];
        for (int r = 0; r < 7; r++)
        {
            Assert.Equal(ascending[r], FourBitCodebook.EncodeFp4(t[r]));
            Assert.Equal(ascending[r + 1], FourBitCodebook.EncodeFp4(MathF.BitIncrement(t[r])));
            Assert.Equal(ascending[r] | 8, FourBitCodebook.EncodeFp4(-t[r]));
            Assert.Equal(ascending[r + 1] | 8, FourBitCodebook.EncodeFp4(-MathF.BitIncrement(t[r])));
        }
        Assert.Equal(0, FourBitCodebook.EncodeFp4(-0.0f)); // x < 0 is false for -0.0
        Assert.Equal(8, FourBitCodebook.EncodeFp4(-0.001f));
        Assert.Equal(3, FourBitCodebook.EncodeFp4(1f));
        Assert.Equal(11, FourBitCodebook.EncodeFp4(-1f));
        // the thresholds are midpoints of neighbouring sorted magnitudes (0.583333f is the kernel's literal, not 7/12)
        float[] sorted = ascending.Select(c => FourBitCodebook.Fp4[c]).ToArray();
        for (int r = 0; r < 7; r++) Assert.Equal((sorted[r] + sorted[r + 1]) / 2, t[r], 5);
    }
}
