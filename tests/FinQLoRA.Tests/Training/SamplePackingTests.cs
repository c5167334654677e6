using FinQLoRA.Adapters;
using FinQLoRA.Data.Sft;
using FinQLoRA.Models;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Training;

/// <summary>Sample packing: rows within max_seq_len, every example once, no example attending to another, and the
/// packed loss and gradients equal to the unpacked ones.</summary>
public sealed class SamplePackingTests
{
    private static readonly List<TokenizedExample> Examples =
    [
        new([1, 403, 407, 261, 378, 3, 90], [-100, -100, -100, -100, -100, 3, 90]),
        new([1, 88, 19, 270], [-100, -100, -100, 270]),
        new([1, 88, 19, 270, 301, 45, 12, 7, 9], [-100, -100, -100, -100, -100, -100, 12, 7, 9]),
        new([1, 5, 6], [-100, -100, -100]),
        new([1, 77, 31, 8, 2], [-100, -100, -100, 8, 2]),
        new([1, 44, 45], [-100, -100, 45]),
    ];

    [Fact]
    public void RowsHoldEveryExampleOnceWithinTheLimitLongestFirst()
    {
        var rows = SamplePacking.Pack(Examples, maxSeqLen: 12);
        Assert.All(rows, r => Assert.True(r.Length <= 12, $"row of {r.Length}"));
        Assert.Equal(Examples.Sum(e => e.Length), rows.Sum(r => r.Length));
        Assert.Equal(3, rows.Count); // first-fit decreasing: 9+3, 7+5, 4+3
        Assert.Equal([0, 9], rows[0].SegmentStarts!);
        Assert.Equal(Examples[2].InputIds.Concat(Examples[3].InputIds), rows[0].InputIds);
        foreach (var row in rows)
            foreach (int start in row.SegmentStarts!)
                Assert.Equal(TokenizedExample.IgnoreIndex, row.Labels[start]); // never predicted from the example before
        Assert.Equal(Examples.Sum(e => e.Labels.Skip(1).Count(l => l != -100)), rows.Sum(r => r.Labels.Count(l => l != -100)));
        var padded = SamplePacking.PaddingFraction(Examples, [[0, 1, 2], [3, 4, 5]]);
        var packed = SamplePacking.PaddingFraction(rows, [[0, 1, 2]]);
        Assert.True(packed < padded, $"packing padding {packed} vs {padded}");
        Assert.Throws<ArgumentException>(() => SamplePacking.Pack(Examples, maxSeqLen: 8));
    }

    [Fact]
    public void PackedLossAndGradientsEqualUnpacked()
    {
        using var model = SeededLlama.Load();
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = [LoraTargets.AllLinear] }, seed: 3);
        LoraTestKit.Randomize(model, LoraLinear.DefaultAdapter, seed: 5);
        model.eval();
        var parameters = LoraInjector.AdapterParameters(model).Select(p => p.P).ToList();

        (float Loss, float[][] Grads) Run(IReadOnlyList<TokenizedExample> examples)
        {
            foreach (var p in parameters) p.grad?.zero_();
            using var scope = NewDisposeScope();
            using var batch = SftCollator.Collate(examples, padId: 2, CPU);
            var loss = SupervisedLoss.Sum(model, batch);
            loss.backward();
            return (loss.item<float>(), parameters.Select(p => p.grad!.data<float>().ToArray()).ToArray());
        }
        var unpacked = Run(Examples);
        var packedRows = SamplePacking.Pack(Examples, maxSeqLen: 12);
        var packed = Run(packedRows);

        Assert.True(Math.Abs(unpacked.Loss - packed.Loss) <= 1e-5 * Math.Abs(unpacked.Loss), $"loss {packed.Loss} vs {unpacked.Loss}");
        double maxGrad = unpacked.Grads.Max(g => g.Max(Math.Abs));
        double maxDiff = unpacked.Grads.Zip(packed.Grads).Max(p => p.First.Zip(p.Second).Max(x => Math.Abs(x.First - x.Second)));
        Assert.True(maxGrad > 0, "no gradient reached the adapters");
        Assert.True(maxDiff <= 1e-4 * maxGrad, $"max |grad diff| {maxDiff} vs max |grad| {maxGrad}");
    }

    [Fact]
    public void NoExampleSeesAnotherInItsRow()
    {
        using var model = SeededLlama.Load();
        model.eval();
        var first = new TokenizedExample([1, 88, 19, 270], [-100, -100, -100, 270]);
        var second = new TokenizedExample([1, 44, 45, 46], [-100, -100, 45, 46]);
        var changed = first with { InputIds = [1, 300, 301, 302] };
        Tensor SecondHidden(TokenizedExample a)
        {
            using var batch = SftCollator.Collate(SamplePacking.Pack([a, second], maxSeqLen: 8), padId: 2, CPU);
            using var noGrad = no_grad();
            var h = model.Hidden(batch.InputIds, batch.Positions!, AttentionMask.Packed(batch.Segments!));
            // pack order: both have 4 tokens, so the first given comes first; `second` is positions 4..7
            return h.narrow(1, 4, 4).clone();
        }
        using var alone = model.Hidden(tensor(second.InputIds.Select(i => (long)i).ToArray(), [1, 4]), (Tensor?)null);
        using var withFirst = SecondHidden(first);
        using var withChanged = SecondHidden(changed);
        TensorAssert.Close(withFirst, withChanged, rtol: 0, atol: 0);
        TensorAssert.Close(alone, withFirst, rtol: 1e-5, atol: 1e-6);
    }
}

/// <summary><c>train --packing</c> end to end: fewer, fuller rows, recorded in run.json, and a run that learns.</summary>
public sealed class PackedTrainingTests
{
    [Fact]
    public void TrainWithPackingPacksRowsAndRecordsIt()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string run = Path.Combine(dir.Path, "run");
        var r = CliProcess.RunSeparately(TimeSpan.FromMinutes(3), "train", "--model", SeededLlama.Folder, "--data", data, "--out", run,
            "--bits", "16", "--dtype", "f32", "--rank", "4", "--batch-size", "2", "--max-steps", "3", "--warmup-steps", "0",
            "--save-every", "0", "--lr", "3e-3", "--max-seq-len", "256", "--packing");
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        var line = r.Stderr.Split('\n').Single(l => l.StartsWith("packing: ", StringComparison.Ordinal));
        var m = System.Text.RegularExpressions.Regex.Match(line, @"packing: (\d+) examples in (\d+) rows");
        Assert.True(m.Success, line);
        Assert.True(int.Parse(m.Groups[2].Value) < int.Parse(m.Groups[1].Value), line);
        var record = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(run, "run.json")))!;
        Assert.True(record["config"]!["packing"]!.GetValue<bool>());
        Assert.All(TrainingRun.Metrics(run), o => Assert.True(double.IsFinite(o["loss"]!.GetValue<double>())));
    }
}
