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

    /// <summary>
    /// The 256 float32 bit patterns printed by PyTorch 2.11.0 (x86-64, CPU capability AVX512) running bitsandbytes'
    /// create_dynamic_map recipe (linspace, neighbour means, 10^(i-6) scale, both signs, 0 and 1, sort):
    /// an independent interpreter and libtorch build from the one TorchSharp loads.
    /// </summary>
    private const string PyTorchDynamicMapHex =
        "bf7e3333bf7a999abf770000bf736666bf6fcccdbf6c3333bf68999abf650000" +
        "bf616666bf5dcccdbf5a3333bf56999abf530000bf4f6666bf4bcccdbf483333" +
        "bf44999abf410000bf3d6666bf39cccdbf363334bf32999abf2f0000bf2b6666" +
        "bf27cccdbf243334bf20999abf1d0000bf196666bf15cccdbf123334bf0e999a" +
        "bf0b0000bf076666bf03ccccbf003333bef93332bef20000beeaccccbee3999a" +
        "bedc6666bed53333bece0000bec6ccccbebf999abeb86666beb13333beaa0000" +
        "bea2ccccbe9b999abe946666be8d3334be860000be7d9999be6f3333be60cccd" +
        "be526666be440000be35999abe273333be18cccdbe0a6666bdf80000bddb3334" +
        "bdc9eb85bdc428f7bdbe6667bdb8a3d7bdb2e148bdad1eb8bda75c2abda1999a" +
        "bd9bd70abd96147bbd9051ebbd8a8f5dbd84cccdbd7e147bbd728f5dbd670a3d" +
        "bd5b851fbd500000bd447ae1bd38f5c3bd2d70a3bd21eb85bd166667bd0ae148" +
        "bcfeb852bce7ae15bcd0a3d7bcb9999abca28f5dbc8b851fbc68f5c3bc3ae148" +
        "bc1f3b64bc160418bc0ccccdbc039581bbf4bc6abbe24dd3bbcfdf3bbbbd70a4" +
        "bbab020dbb989374bb8624ddbb676c8abb428f5cbb1db22dbaf1a9fcbaa7ef9d" +
        "ba7765ffba59e83eba3c6a80ba1eecc1ba016f01b9c7e283b98ce705b923d70b" +
        "b8ba1f4bb88aefb3b8378034b7b24206b70205ffb65a1a94b513a3b700000000" +
        "3513a3b7365a1a94370205ff37b2420638378034388aefb338ba1f4b3923d70b" +
        "398ce70539c7e2833a016f013a1eecc13a3c6a803a59e83e3a7765ff3aa7ef9d" +
        "3af1a9fc3b1db22d3b428f5c3b676c8a3b8624dd3b9893743bab020d3bbd70a4" +
        "3bcfdf3b3be24dd33bf4bc6a3c0395813c0ccccd3c1604183c1f3b643c3ae148" +
        "3c68f5c33c8b851f3ca28f5d3cb9999a3cd0a3d73ce7ae153cfeb8523d0ae148" +
        "3d1666673d21eb853d2d70a33d38f5c33d447ae13d5000003d5b851f3d670a3d" +
        "3d728f5d3d7e147b3d84cccd3d8a8f5d3d9051eb3d96147b3d9bd70a3da1999a" +
        "3da75c2a3dad1eb83db2e1483db8a3d73dbe66673dc428f73dc9eb853ddb3334" +
        "3df800003e0a66663e18cccd3e2733333e35999a3e4400003e5266663e60cccd" +
        "3e6f33333e7d99993e8600003e8d33343e9466663e9b999a3ea2cccc3eaa0000" +
        "3eb133333eb866663ebf999a3ec6cccc3ece00003ed533333edc66663ee3999a" +
        "3eeacccc3ef200003ef933323f0033333f03cccc3f0766663f0b00003f0e999a" +
        "3f1233343f15cccd3f1966663f1d00003f20999a3f2433343f27cccd3f2b6666" +
        "3f2f00003f32999a3f3633343f39cccd3f3d66663f4100003f44999a3f483333" +
        "3f4bcccd3f4f66663f5300003f56999a3f5a33333f5dcccd3f6166663f650000" +
        "3f68999a3f6c33333f6fcccd3f7366663f7700003f7a999a3f7e33333f800000";

    [Fact]
    public void EqualsTheTableComputedByPyTorch()
    {
        Assert.Equal(256 * 8, PyTorchDynamicMapHex.Length);
        uint[] expected = Enumerable.Range(0, 256).Select(i => Convert.ToUInt32(PyTorchDynamicMapHex.Substring(8 * i, 8), 16)).ToArray();
        Assert.Equal(expected, DynamicMap.Values.ToArray().Select(BitConverter.SingleToUInt32Bits).ToArray());
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
