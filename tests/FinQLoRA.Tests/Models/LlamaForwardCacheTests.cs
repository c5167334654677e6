using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary><see cref="DecoderModel.ForwardWithoutAdvancing"/>: the one forward body, which the advancing forward and the
/// server's slot step share; it writes keys and values where the cache stands and leaves the cache there.</summary>
public sealed class LlamaForwardCacheTests
{
    [Fact]
    public void TheForwardWithoutAdvancingGivesTheAdvancingForwardsLogitsAndLeavesTheCache()
    {
        using var model = SeededLlama.Load();
        using var noGrad = no_grad();
        using var ids = tensor(new long[] { 1, 5, 9, 200, 7 }).unsqueeze(0);
        using var positions = AttentionMask.Positions(null, 1, 5, 0, CPU);
        using var mask = AttentionMask.Build(null, 1, 5, 0, CPU);
        using var placed = new KvCache(model.Config, 1, 16, model.ComputeDType, CPU);
        using var advanced = new KvCache(model.Config, 1, 16, model.ComputeDType, CPU);

        using var still = model.ForwardWithoutAdvancing(ids, positions, mask, placed, lastOnly: true);
        using var moved = model.Forward(ids, positions, mask, advanced, lastOnly: true);

        Assert.Equal(0, placed.Length);
        Assert.Equal(5, advanced.Length);
        Assert.Equal(new long[] { 1, 1, model.Config.VocabSize }, still.shape);
        TensorAssert.BitIdentical(moved, still);
        // What the slot step wrote out before the body was shared: embed, layers over the cache, head.
        using var byHand = new KvCache(model.Config, 1, 16, model.ComputeDType, CPU);
        using var hidden = model.RunLayers(model.Embed(ids), 0, model.Layers.Count, positions, mask, byHand);
        using var pieces = model.Head(hidden.narrow(1, 4, 1));
        TensorAssert.BitIdentical(pieces, still, "the embed, layers and head run one by one");
    }
}
