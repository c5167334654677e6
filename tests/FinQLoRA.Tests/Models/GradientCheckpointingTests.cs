using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>
/// <see cref="LayerCheckpoint"/>: recomputing each layer in backward gives the same adapter gradients as keeping the
/// activations — with LoRA dropout on, which only holds if the recomputation replays the forward's random state.
/// The masks come from libtorch's global generator (seeded per run), so these tests run alone: a test drawing from it
/// in parallel would change the plain run's masks.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class GradientCheckpointingTests
{
    private static readonly long[] Targets = [403, 407, 261, 378, 3, 88, 19, 270, 301, 45, 2, 9];

    /// <summary>Adapter gradients of one training forward/backward, dropout 0.3, RNG seeded with <paramref name="seed"/>,
    /// on the fp32 model or on a bf16 one over 2 × 12 tokens (enough rows for CPU widening: <see cref="FinQLoRA.Runtime.CpuMatmulPrecision"/>).</summary>
    private static Dictionary<string, float[]> Gradients(bool checkpointing, long seed, ScalarType dtype = ScalarType.Float32)
    {
        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = dtype });
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, Dropout = 0.3, TargetModules = ["q_proj", "v_proj", "up_proj", "down_proj"] }, seed: 1);
        LoraTestKit.Randomize(model, "default", seed: 2); // B ≠ 0, so A gets gradients too
        model.GradientCheckpointing = checkpointing;
        model.train();
        using var scope = NewDisposeScope();
        manual_seed(seed);
        var ids = dtype == ScalarType.Float32 ? LoraTestKit.Ids() : randint(3, 500, [2, 12], generator: new Generator(4));
        var logits = model.Forward(ids);
        var labels = dtype == ScalarType.Float32 ? tensor(Targets, [2, 6]) : ids.roll(-1, 1);
        var loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[2]), labels.reshape(-1));
        loss.backward();
        return LoraInjector.AdapterParameters(model).ToDictionary(p => p.Name, p => p.P.grad!.data<float>().ToArray());
    }

    [Fact]
    public void CheckpointedLayersGiveTheSameAdapterGradients()
    {
        var plain = Gradients(checkpointing: false, seed: 5);
        var checkpointed = Gradients(checkpointing: true, seed: 5);
        Assert.Equal(5 * 4 * 2, plain.Count); // 5 layers × 4 projections × (A, B)
        Assert.All(plain.Values, g => Assert.Contains(g, x => x != 0));
        double diff = TensorAssert.MaxDiff(plain, checkpointed);
        double scale = plain.Values.Max(g => g.Max(Math.Abs));
        Assert.True(diff <= 1e-6 * scale, $"checkpointed vs plain gradients: max |diff| {diff:E2} (largest gradient {scale:E2})");

        // Dropout matters here: another mask gives clearly other gradients, so a recomputation that drew new masks would fail above.
        var otherMask = Gradients(checkpointing: false, seed: 6);
        Assert.True(TensorAssert.MaxDiff(plain, otherMask) > 1e-2 * scale, "dropout did not change the gradients; the test cannot see whether the RNG is replayed");
    }

    /// <summary>In bf16 on a CPU that widens, a checkpointed layer's first forward (no gradients) runs attention in fp32
    /// as its recomputation does, so backward differentiates the outputs forward passed on: the gradients match the
    /// unchecked run's to fp32 rounding, not merely to bf16's.</summary>
    [Fact]
    public void CheckpointedBf16LayersGiveTheSameAdapterGradients()
    {
        var plain = Gradients(checkpointing: false, seed: 5, ScalarType.BFloat16);
        var checkpointed = Gradients(checkpointing: true, seed: 5, ScalarType.BFloat16);
        double diff = TensorAssert.MaxDiff(plain, checkpointed);
        double scale = plain.Values.Max(g => g.Max(Math.Abs));
        Assert.True(scale > 0);
        Assert.True(diff <= 1e-6 * scale, $"checkpointed vs plain bf16 gradients: max |diff| {diff:E2} (largest gradient {scale:E2})");
    }
}
