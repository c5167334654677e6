using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>Each family's quirky seeded model loads from its own config.json, and decoding with the KV cache gives the
/// logits of one full forward at every position, past the sliding window (the window and the per-layer RoPE are
/// computed the same way for both).</summary>
public class FamilyForwardTests
{
    [Theory]
    [MemberData(nameof(SeededFamilies.Names), MemberType = typeof(SeededFamilies))]
    public void CachedDecodingEqualsTheFullForwardPastTheWindow(string family)
    {
        using var dir = new TempFolder();
        using var model = SeededFamilies.Load(SeededFamilies.Write(dir.Path, family));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        long[] prompt = [1, 40, 77, 300, 12, 5, 99, 410, 23, 64, 7, 250, 31, 8];
        Assert.True(prompt.Length > SeededFamilies.Window * 2);
        var ids = tensor(prompt).unsqueeze(0);
        var full = model.Forward(ids);
        Assert.True(full.abs().max().item<float>() > 0.05f, "logits too small to test anything");
        using var cache = new KvCache(model.Config, 1, prompt.Length, ScalarType.Float32, CPU);
        var first = model.Forward(ids.narrow(1, 0, 3), cache: cache);
        TensorAssert.MaxDiffAtMost(full.narrow(1, 0, 3), first, 1e-4, family);
        for (int t = 3; t < prompt.Length; t++)
            TensorAssert.MaxDiffAtMost(full.narrow(1, t, 1), model.Forward(ids.narrow(1, t, 1), cache: cache), 1e-4, $"{family} position {t}");
    }
}
