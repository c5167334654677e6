using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization;

public sealed class DynamicMapTests
{
    static DynamicMapTests() => TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void HasTheShapeOfTheSignedDynamicMap()
    {
        var d = DynamicMap.Values;
        Assert.Equal(256, d.Length);
        for (int i = 1; i < 256; i++) Assert.True(d[i - 1] <= d[i]);
        Assert.Equal(-0.99296875f, d[0]);   // -(0.9859375 + 1) / 2: the largest mean of linspace(0.1, 1, 65)
        Assert.Equal(1.0f, d[255]);
        Assert.Equal(0f, d[127]);           // 127 negatives, then 0, then 127 positives and 1.0
        for (int i = 0; i < 127; i++) Assert.Equal(-d[i], d[254 - i]); // mirror pairs around 0
        Assert.Equal(1e-6f * ((0.1f + 1f) / 2f), d[128]); // smallest positive: exponent 10^-6, one fraction item
    }

    /// <summary>
    /// The verification the class comment cites: bitsandbytes' Python, op for op, through libtorch (the same CPU
    /// kernels PyTorch runs), compared bit for bit with our pure C# table.
    /// </summary>
    [Fact]
    public void EqualsTheBitsandbytesRecipeRunThroughLibtorch()
    {
        using var scope = NewDisposeScope();
        var data = new List<float>();
        for (int i = 0; i < 7; i++)
        {
            Tensor boundaries = linspace(0.1, 1, (1 << i) + 1, ScalarType.Float32);
            Tensor means = (boundaries[..^1] + boundaries[1..]) / 2.0;
            double scale = Math.Pow(10, -(7 - 1) + i);
            data.AddRange((means * scale).data<float>().ToArray());
            data.AddRange((means * -scale).data<float>().ToArray());
        }
        data.Add(0f);
        data.Add(1.0f);
        data.Sort();
        Assert.Equal(data.Select(BitConverter.SingleToUInt32Bits), DynamicMap.Values.ToArray().Select(BitConverter.SingleToUInt32Bits));
    }

    [Fact]
    public void LinspaceMatchesLibtorch()
    {
        using var scope = NewDisposeScope();
        foreach (int steps in new[] { 2, 3, 5, 9, 17, 33, 65, 129, 1000 })
        {
            float[] expected = linspace(0.1, 1, steps, ScalarType.Float32).data<float>().ToArray();
            Assert.Equal(expected, DynamicMap.TorchLinspace(0.1f, 1f, steps));
        }
    }

    [Fact]
    public void EncodePicksTheNearestEntry()
    {
        float[] d = DynamicMap.Values.ToArray();
        for (int i = 0; i < 256; i++) Assert.Equal(d[i], d[DynamicMap.Encode(d, d[i])]);
        var rng = new Random(7);
        for (int t = 0; t < 5000; t++)
        {
            float x = (float)(rng.NextDouble() * 2 - 1);
            int q = DynamicMap.Encode(d, x);
            float best = d.Min(v => MathF.Abs(v - x));
            Assert.Equal(best, MathF.Abs(d[q] - x));
        }
        Assert.Equal(0, DynamicMap.Encode(d, -1f));
        Assert.Equal(255, DynamicMap.Encode(d, 1f));
    }
}
