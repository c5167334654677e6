using FinQLoRA.Data.Sft;
using FinQLoRA.Training;

namespace FinQLoRA.Privacy.Sampling;

/// <summary>
/// The batches of a differentially private run. Each step draws its units afresh: with Poisson sampling every unit
/// joins independently with probability q = E/N (E the expected units per step over all ranks, N the units), so the
/// batch size varies, as the sampled Gaussian mechanism's accounting assumes (Opacus' UniformWithReplacementSampler).
/// The draw is a pure function of (seed, step) and the same on every rank: one draw over the whole data set, its
/// units dealt round-robin to the ranks, and a unit never split between ranks (its gradient is clipped as a whole).
/// A resumed run draws the same batches. All examples of a drawn unit train in the step.
/// </summary>
public sealed class PrivateBatches
{
    private readonly IReadOnlyList<TokenizedExample> _examples;
    private readonly int[][] _examplesOfUnit;
    private readonly TrainConfig _c;

    private PrivateBatches(IReadOnlyList<TokenizedExample> examples, TrainConfig c, int worldSize)
    {
        (_examples, _c) = (examples, c);
        Units = PrivacyUnits.Count(examples);
        var members = new List<int>[Units];
        for (int i = 0; i < Units; i++) members[i] = [];
        for (int i = 0; i < examples.Count; i++) members[examples[i].Unit].Add(i);
        _examplesOfUnit = [.. members.Select(m => m.ToArray())];
        ExpectedUnits = Math.Min(Units, (double)c.BatchSize * c.GradAccum * worldSize);
        SampleRate = ExpectedUnits / Units;
        // at least one step per epoch, as the plan counts steps as batches / grad_accum
        BatchesPerEpoch = Math.Max(c.GradAccum, (Units + c.BatchSize * worldSize - 1) / (c.BatchSize * worldSize));
    }

    /// <summary>N: the units of the training set.</summary>
    public int Units { get; }

    /// <summary>E: units per step on average, over all ranks (batch_size × grad_accum × ranks, at most N).</summary>
    public double ExpectedUnits { get; }

    /// <summary>q = E/N.</summary>
    public double SampleRate { get; }

    /// <summary>Micro-batches of batch_size units per rank in one pass over the units (what the plan counts epochs in).</summary>
    public int BatchesPerEpoch { get; }

    public static PrivateBatches Create(IReadOnlyList<TokenizedExample> examples, TrainConfig c, int worldSize)
    {
        if (examples.Any(e => e.Unit < 0)) throw new ArgumentException("every example needs its privacy unit", nameof(examples));
        return new PrivateBatches(examples, c, worldSize);
    }

    /// <summary>This rank's micro-batches of optimizer step <paramref name="step"/> (0-based): batch_size rows each, as
    /// many as its units need (none when the draw gave it no unit); packed into rows when the run packs.</summary>
    public List<List<TokenizedExample>> Micro(int step, int rank, int worldSize)
    {
        var drawn = Draw(step);
        var mine = drawn.Where((_, i) => i % worldSize == rank).SelectMany(u => _examplesOfUnit[u]).Select(i => _examples[i]).ToList();
        IReadOnlyList<TokenizedExample> rows = _c.Packing && mine.Count > 0 ? SamplePacking.Pack(mine, _c.MaxSeqLen) : mine;
        return [.. rows.Chunk(_c.BatchSize).Select(chunk => chunk.ToList())];
    }

    /// <summary>The units of a step, in increasing order.</summary>
    public IReadOnlyList<int> Draw(int step)
    {
        if (_c.DpSampling == DpSampling.Poisson)
        {
            var rng = StepRandom(step);
            var drawn = new List<int>();
            for (int u = 0; u < Units; u++)
                if (rng.NextDouble() < SampleRate) drawn.Add(u);
            return drawn;
        }
        // shuffle: a seeded permutation per pass, cut into batches of E units (Opacus' non-Poisson loader)
        int perStep = Math.Max(1, (int)Math.Round(ExpectedUnits));
        int stepsPerPass = Math.Max(1, Units / perStep);
        var order = Enumerable.Range(0, Units).ToArray();
        new Random(unchecked((int)(_c.Seed * 1000003 + step / stepsPerPass))).Shuffle(order);
        return [.. order.Skip(step % stepsPerPass * perStep).Take(perStep).Order()];
    }

    // System.Random's seeded sequence is fixed across runs and platforms, as LengthGroupedBatches relies on too.
    private Random StepRandom(int step) => new(unchecked((int)(_c.Seed * 7919 + step * 104729L + 17)));
}
