using FinQLoRA.Adapters;
using FinQLoRA.Data.Sft;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;
using static FinQLoRA.Tests.Privacy.PrivateStepKit;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Privacy;

/// <summary>
/// Per-unit gradients from one forward and one backward per micro-batch equal backward passes of each example alone
/// (fp32, ≤ 1e-6 relative to the largest gradient entry), for LoRA, rsLoRA and DoRA on every projection (fused q/k/v
/// and gate/up included), unpacked and packed rows, example- and user-level units, with gradient checkpointing, and
/// with dropout (there against the same masks: one backward per example of its own loss in the same batch).
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class PerUnitGradientTests
{
    private const double Tolerance = 1e-6;

    private static Dictionary<int, Tensor[]> UnitGradients(DecoderModel model, IReadOnlyList<List<TokenizedExample>> micro, long? rowsPerChunk = null)
    {
        using var optimizer = new RecordingOptimizer(Parameters(model));
        return Step(model, optimizer, Settings(), rowsPerChunk: rowsPerChunk).UnitGradients(micro);
    }

    private static void AssertMatches(Dictionary<int, Tensor[]> got, Dictionary<int, Tensor[]> expected)
    {
        Assert.Equal(expected.Keys.Order(), got.Keys.Order());
        foreach (var (unit, reference) in expected)
        {
            double error = RelativeError(got[unit], reference);
            Assert.True(error <= Tolerance, $"unit {unit}: relative error {error:E2}");
        }
    }

    private static Dictionary<int, Tensor[]> BatchOneReference(DecoderModel model, IEnumerable<TokenizedExample> examples)
    {
        var sums = new Dictionary<int, Tensor[]>();
        foreach (var e in examples)
        {
            var g = BatchOneGradient(model, e);
            sums[e.Unit] = sums.TryGetValue(e.Unit, out var earlier) ? Add(earlier, g) : g;
        }
        return sums;
    }

    [Theory]
    [InlineData(Variant.Lora)]
    [InlineData(Variant.RsLora)]
    [InlineData(Variant.Dora)]
    public void ExampleGradientsEqualBatchOneBackwardPasses(Variant variant)
    {
        using var model = Model(variant);
        var examples = Examples();
        var got = UnitGradients(model, [[examples[0], examples[1]], [examples[2], examples[3], examples[4]]]);
        AssertMatches(got, BatchOneReference(model, examples));
    }

    [Theory]
    [InlineData(Variant.Lora)]
    [InlineData(Variant.Dora)]
    public void PackedRowsGiveEachExampleTheGradientOfItsOwnTokens(Variant variant)
    {
        using var model = Model(variant);
        var examples = Examples();
        var rows = SamplePacking.Pack(examples, maxSeqLen: 16);
        Assert.Contains(rows, r => r.SegmentStarts!.Length >= 2); // some row really holds several examples
        var got = UnitGradients(model, [[.. rows]]);
        AssertMatches(got, BatchOneReference(model, examples));
    }

    [Theory]
    [InlineData(Variant.Lora)]
    [InlineData(Variant.Dora)]
    public void UserLevelUnitIsTheSumOfItsExamplesAcrossMicroBatches(Variant variant)
    {
        using var model = Model(variant);
        // unit 10 = examples 0, 2, 4: one in the first micro-batch, two in the second
        var examples = Examples(10, 11, 10, 12, 10);
        var got = UnitGradients(model, [[examples[0], examples[1]], [examples[2], examples[3], examples[4]]]);
        AssertMatches(got, BatchOneReference(model, examples));
    }

    [Fact]
    public void GradientCheckpointingRecordsEachLayerOnceThroughItsRecomputation()
    {
        using var model = Model(Variant.Dora);
        model.GradientCheckpointing = true;
        var examples = Examples();
        var got = UnitGradients(model, [[.. examples]]);
        model.GradientCheckpointing = false;
        AssertMatches(got, BatchOneReference(model, examples));
    }

    [Fact]
    public void ChunkedLossWithTokenWeightsGivesTheSameUnitGradients()
    {
        using var model = Model(Variant.Lora);
        var examples = Examples();
        var chunked = UnitGradients(model, [[.. examples]], rowsPerChunk: 3); // 16 target rows in chunks of 3
        AssertMatches(chunked, BatchOneReference(model, examples));
    }

    /// <summary>With dropout the masks of a batched pass cannot be replayed by batch-1 passes, so the reference is exact
    /// in another way: the same batch under the same seed (so the same masks), one backward per example of that
    /// example's own mean loss alone (the other tokens weighted 0).</summary>
    [Theory]
    [InlineData(Variant.Lora, false)]
    [InlineData(Variant.Dora, false)]
    [InlineData(Variant.Lora, true)]
    public void WithDropoutEachUnitGetsTheGradientOfItsOwnLossUnderTheSameMasks(Variant variant, bool packed)
    {
        using var model = Model(variant, dropout: 0.25);
        model.train();
        var examples = Examples();
        List<TokenizedExample> batch = packed ? [.. SamplePacking.Pack(examples, 16)] : [.. examples];
        manual_seed(42);
        var got = UnitGradients(model, [batch]);

        var parameters = Parameters(model);
        var expected = new Dictionary<int, Tensor[]>();
        var weights = WeightsOfEachExample(batch);
        foreach (var (unit, w) in weights)
        {
            foreach (var (_, p) in parameters) p.grad?.zero_();
            manual_seed(42);
            using (var scope = NewDisposeScope())
            {
                using var collated = SftCollator.Collate(batch, padId: 2, CPU);
                SupervisedLoss.Sum(model, collated, tokenWeights: w).backward();
            }
            expected[unit] = [.. parameters.Select(p => Copy(p.P.grad!))];
        }
        AssertMatches(got, expected);

        // and the masks mattered: without dropout the gradients differ
        model.eval();
        var withoutDropout = UnitGradients(model, [batch]);
        Assert.True(RelativeError(withoutDropout[0], expected[0]) > 1e-3, "dropout changed nothing");
    }

    /// <summary>For each example of a batch, the [B, T] weights 1/n on its own n targets and 0 elsewhere (the same
    /// positions <see cref="SupervisedLoss"/> reads: labels from position 1 on).</summary>
    private static List<(int Unit, Tensor Weights)> WeightsOfEachExample(IReadOnlyList<TokenizedExample> rows)
    {
        int t = rows.Max(r => r.Length);
        var result = new List<(int, Tensor)>();
        for (int r = 0; r < rows.Count; r++)
        {
            int[] starts = rows[r].SegmentStarts ?? [0];
            int[] units = rows[r].SegmentUnits ?? [rows[r].Unit];
            for (int k = 0; k < starts.Length; k++)
            {
                int end = k + 1 < starts.Length ? starts[k + 1] : rows[r].Length;
                var positions = Enumerable.Range(starts[k], end - starts[k]).Where(c => c >= 1 && rows[r].Labels[c] != TokenizedExample.IgnoreIndex).ToList();
                var w = new float[rows.Count * t];
                foreach (int c in positions) w[r * t + c] = 1f / positions.Count;
                var weights = tensor(w, [rows.Count, t]);
                weights.DetachFromDisposeScope();
                result.Add((units[k], weights));
            }
        }
        return result;
    }

    [Fact]
    public void CapturesAreRemovedAfterTheStepEvenWhenItFails()
    {
        using var model = Model(Variant.Lora);
        using var optimizer = new RecordingOptimizer(Parameters(model));
        var step = Step(model, optimizer, Settings());
        var unitless = new TokenizedExample([1, 5, 6, 7], [-100, -100, 6, 7]); // Unit -1: a bug in the caller
        Assert.Throws<InvalidOperationException>(() => step.Run([[unitless]], 1, 0));
        step.Run([[.. Examples()]], 1, 0);
        Assert.All(LoraInjector.Wrapped(model), w => Assert.Null(w.Lora.Capture));
    }
}
