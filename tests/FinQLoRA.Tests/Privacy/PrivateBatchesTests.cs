using FinQLoRA.Data.Sft;
using FinQLoRA.Privacy;
using FinQLoRA.Privacy.Sampling;
using FinQLoRA.Training;

namespace FinQLoRA.Tests.Privacy;

/// <summary>The units each DP step trains on: Poisson draws at rate q, the same on every rank and on resume, a unit
/// never split between ranks, and all of a user's examples together.</summary>
public sealed class PrivateBatchesTests
{
    /// <summary><paramref name="units"/> units; unit u has 1 + u % <paramref name="perUnit"/> examples (ids encode unit and index).</summary>
    private static List<TokenizedExample> Examples(int units, int perUnit = 1)
    {
        var list = new List<TokenizedExample>();
        for (int u = 0; u < units; u++)
            for (int k = 0; k <= u % perUnit; k++)
                list.Add(new TokenizedExample([u, k, 1, 2], [-100, k, 1, 2]) { Unit = u });
        return list;
    }

    private static TrainConfig Config(int batch, int accum = 1, DpSampling sampling = DpSampling.Poisson, bool packing = false) =>
        new() { Model = "m", Data = "d", Dp = true, DpNoiseMultiplier = 1, BatchSize = batch, GradAccum = accum, DpSampling = sampling, Packing = packing, MaxSeqLen = 64, Seed = 11 };

    [Fact]
    public void Poisson_draws_each_unit_at_the_sample_rate()
    {
        var batches = PrivateBatches.Create(Examples(2000), Config(batch: 40), worldSize: 1);
        Assert.Equal(0.02, batches.SampleRate, 12);
        const int steps = 200;
        long drawn = Enumerable.Range(0, steps).Sum(s => (long)batches.Draw(s).Count);
        // drawn ~ Binomial(steps·N, q): mean 8000, sd √(8000·0.98) ≈ 88.5; ±5 sd cannot fail by chance
        Assert.InRange(drawn, 8000 - 5 * 88.5, 8000 + 5 * 88.5);
        var sizes = Enumerable.Range(0, steps).Select(s => batches.Draw(s).Count).Distinct().Count();
        Assert.True(sizes > 5, "Poisson batches vary in size");
    }

    [Fact]
    public void A_step_draws_the_same_units_every_time_and_other_steps_draw_others()
    {
        var a = PrivateBatches.Create(Examples(500), Config(batch: 25), 1);
        var b = PrivateBatches.Create(Examples(500), Config(batch: 25), 1);
        Assert.Equal(a.Draw(7), b.Draw(7)); // a resumed run (a new sampler) draws step 7 again as it was
        Assert.NotEqual(a.Draw(7), a.Draw(8));
    }

    [Fact]
    public void Ranks_share_one_draw_and_never_split_a_unit()
    {
        var examples = Examples(300, perUnit: 3);
        var c = Config(batch: 4, accum: 2);
        var batches = PrivateBatches.Create(examples, c, worldSize: 2);
        Assert.Equal(16.0 / 300, batches.SampleRate, 12); // 4 × 2 × 2 ranks expected per step
        for (int step = 0; step < 20; step++)
        {
            var perRank = Enumerable.Range(0, 2).Select(r => batches.Micro(step, r, 2).SelectMany(m => m).ToList()).ToArray();
            var units0 = perRank[0].Select(e => e.Unit).ToHashSet();
            var units1 = perRank[1].Select(e => e.Unit).ToHashSet();
            Assert.Empty(units0.Intersect(units1));
            Assert.Equal(batches.Draw(step).ToHashSet(), units0.Union(units1).ToHashSet());
            // every example of a drawn unit trains: unit u has 1 + u % 3 examples
            foreach (var u in units0.Concat(units1))
                Assert.Equal(1 + u % 3, perRank[0].Concat(perRank[1]).Count(e => e.Unit == u));
            Assert.All(batches.Micro(step, 0, 2), m => Assert.InRange(m.Count, 1, 4));
        }
    }

    [Fact]
    public void Packed_rows_keep_each_examples_unit()
    {
        var batches = PrivateBatches.Create(Examples(200, perUnit: 2), Config(batch: 2, packing: true), 1);
        var rows = batches.Micro(3, 0, 1).SelectMany(m => m).ToList();
        Assert.All(rows, r => Assert.NotNull(r.SegmentUnits));
        // the first id of each example is its unit (see Examples)
        foreach (var row in rows)
            for (int s = 0; s < row.SegmentStarts!.Length; s++)
                Assert.Equal(row.InputIds[row.SegmentStarts[s]], row.SegmentUnits![s]);
        Assert.Equal(batches.Draw(3).ToHashSet(), rows.SelectMany(r => r.SegmentUnits!).ToHashSet());
    }

    [Fact]
    public void Shuffle_gives_fixed_size_batches_that_cover_every_unit_once_per_pass()
    {
        var batches = PrivateBatches.Create(Examples(100), Config(batch: 10, sampling: DpSampling.Shuffle), 1);
        var pass = Enumerable.Range(0, 10).Select(batches.Draw).ToList();
        Assert.All(pass, d => Assert.Equal(10, d.Count));
        Assert.Equal(Enumerable.Range(0, 100), pass.SelectMany(d => d).Order());
    }

    [Fact]
    public void Units_are_renumbered_densely_in_order_of_first_appearance()
    {
        var dense = PrivacyUnits.Dense([.. new[] { 40, 7, 40, 3 }.Select(u => new TokenizedExample([1], [1]) { Unit = u })]);
        Assert.Equal([0, 1, 0, 2], dense.Select(e => e.Unit));
        Assert.Equal(3, PrivacyUnits.Count(dense));
    }
}
