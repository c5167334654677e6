using FinQLoRA.Tests.Models.Reference;
using FinQLoRA.Tests.Support;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>
/// Each family's quirky seeded model (<see cref="SeededFamilies"/>) through <c>DecoderModel</c> (fp32) against
/// <see cref="HfReferenceForward"/>, a forward written from transformers' modeling code that shares nothing with ours
/// but the safetensors reader: logits within 1e-5 at every position of a prompt longer than twice the window (and of
/// one past the original context of the scaled RoPEs, where LongRoPE switches to its long factors), and the same rows
/// from a left-padded batch. For Mistral this is the only check of its window: llama.cpp runs it as plain llama.
/// </summary>
public sealed class FamilyReferenceTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-5;

    /// <summary>14 tokens: past twice the window of 6.</summary>
    private static readonly long[] ShortPrompt = [1, 40, 77, 300, 12, 5, 99, 410, 23, 64, 7, 250, 31, 8];

    /// <summary>72 tokens: past the original context of the seeded YaRN (32), Llama 3 (64) and LongRoPE (64) settings.</summary>
    private static readonly long[] LongPrompt = Enumerable.Range(0, 72).Select(i => (long)((i * 37 + 11) % 500 + 1)).ToArray();

    /// <summary>A second, shorter prompt for the padded batch (still longer than the window).</summary>
    private static readonly long[] OtherPrompt = [1, 300, 12, 88, 5, 401, 17, 260, 9];

    [Theory]
    [MemberData(nameof(SeededFamilies.Names), MemberType = typeof(SeededFamilies))]
    public void LogitsEqualTheTransformersReferenceAtEveryPosition(string family)
    {
        using var dir = new TempFolder();
        string folder = SeededFamilies.Write(dir.Path, family);
        using var model = SeededFamilies.Load(folder);
        using var reference = new HfReferenceForward(folder);
        using var noGrad = no_grad();
        Assert.True(ShortPrompt.Length > 2 * SeededFamilies.Window);
        foreach (var prompt in new[] { ShortPrompt, LongPrompt })
        {
            using var scope = NewDisposeScope();
            var expected = reference.Logits(prompt);
            var actual = model.Forward(tensor(prompt).unsqueeze(0));
            Assert.True(TensorAssert.MaxAbs(expected) > 0.05, "logits too small to test anything");
            output.WriteLine($"{family} T={prompt.Length}: max |diff| {TensorAssert.MaxDiff(expected, actual):G3} (max |logit| {TensorAssert.MaxAbs(expected):G3})");
            TensorAssert.MaxDiffAtMost(expected, actual, Tolerance, $"{family}, {prompt.Length} tokens");
        }
    }

    [Theory]
    [MemberData(nameof(SeededFamilies.Names), MemberType = typeof(SeededFamilies))]
    public void LeftPaddingLeavesTheRealRowsAsTheUnpaddedReference(string family)
    {
        using var dir = new TempFolder();
        string folder = SeededFamilies.Write(dir.Path, family);
        using var model = SeededFamilies.Load(folder);
        using var reference = new HfReferenceForward(folder);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        int t = ShortPrompt.Length, pad = t - OtherPrompt.Length;
        var ids = tensor(ShortPrompt.Concat(Enumerable.Repeat(0L, pad)).Concat(OtherPrompt).ToArray()).view(2, t);
        var padMask = tensor(Enumerable.Repeat(1L, t).Concat(Enumerable.Repeat(0L, pad)).Concat(Enumerable.Repeat(1L, OtherPrompt.Length)).ToArray()).view(2, t);
        var logits = model.Forward(ids, padMask);
        var first = reference.Logits(ShortPrompt);
        var second = reference.Logits(OtherPrompt);
        output.WriteLine($"{family} padded: max |diff| {Math.Max(TensorAssert.MaxDiff(first, logits.narrow(0, 0, 1)), TensorAssert.MaxDiff(second, logits.narrow(0, 1, 1).narrow(1, pad, OtherPrompt.Length))):G3}");
        TensorAssert.MaxDiffAtMost(first, logits.narrow(0, 0, 1), Tolerance, $"{family}, unpadded row of the batch");
        TensorAssert.MaxDiffAtMost(second, logits.narrow(0, 1, 1).narrow(1, pad, OtherPrompt.Length), Tolerance, $"{family}, left-padded row");
    }

    /// <summary>The comparison can see the window: without it the reference's logits past the window move by far more
    /// than the tolerance (so a model that ignored the window would fail the test above).</summary>
    [Theory]
    [InlineData("mistral")]
    [InlineData("gemma2")]
    [InlineData("gemma3")]
    public void TheWindowChangesTheReferenceLogits(string family)
    {
        using var dir = new TempFolder();
        string folder = SeededFamilies.Write(dir.Path, family);
        using var windowed = new HfReferenceForward(folder);
        using var unwindowed = new HfReferenceForward(folder, a => a with { SlidingWindow = null });
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        Assert.NotNull(windowed.Arch.SlidingWindow);
        Assert.Contains(true, windowed.Arch.SlidingLayers);
        int w = SeededFamilies.Window;
        var a = windowed.Logits(ShortPrompt);
        var b = unwindowed.Logits(ShortPrompt);
        TensorAssert.MaxDiffAtMost(a.narrow(1, 0, w), b.narrow(1, 0, w), 0, $"{family}: within the window");
        Assert.True(TensorAssert.MaxDiff(a, b) > 1e3 * Tolerance, $"{family}: the window changes nothing ({TensorAssert.MaxDiff(a, b):G3})");
    }

    /// <summary>Likewise the RoPE scaling (llama3, YaRN, linear, LongRoPE): the long prompt's logits move far beyond the
    /// tolerance without it, and for LongRoPE the long factors (past the original 64 positions) differ from the short.</summary>
    [Theory]
    [InlineData("llama3.2")]
    [InlineData("qwen2")]
    [InlineData("gemma3")]
    [InlineData("phi3")]
    public void TheRopeScalingChangesTheReferenceLogits(string family)
    {
        using var dir = new TempFolder();
        string folder = SeededFamilies.Write(dir.Path, family);
        using var scaled = new HfReferenceForward(folder);
        using var plain = new HfReferenceForward(folder, a => a with { RopeScaling = null });
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        Assert.NotNull(scaled.Arch.RopeScaling);
        double diff = TensorAssert.MaxDiff(scaled.Logits(LongPrompt), plain.Logits(LongPrompt));
        Assert.True(diff > 1e3 * Tolerance, $"{family}: the rope scaling changes nothing ({diff:G3})");
        if (family == "phi3")
        {
            var shortFactors = HfRope.Init(scaled.Arch, scaled.Arch.RopeTheta, scaled.Arch.RopeScaling, 64).InvFreq;
            var longFactors = HfRope.Init(scaled.Arch, scaled.Arch.RopeTheta, scaled.Arch.RopeScaling, 65).InvFreq;
            TensorAssert.NotClose(shortFactors, longFactors);
        }
    }
}
