using FinQLoRA.Tests.Distributed;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Training;

/// <summary>
/// Data parallelism stays exact on every family: <c>mpirun -np 2 finqlora train --batch-size 2</c> and
/// <c>finqlora train --batch-size 4</c> on each quirky seeded model (biases, q/k norms, sandwich norms, soft-caps, a
/// sliding window shorter than the examples, fused projections) end with the same adapter, as
/// <see cref="DataParallelEquivalenceMpiTests"/> shows for a plain Llama.
/// </summary>
[Collection(MpiCollection.Name)]
public sealed class FamilyDataParallelMpiTests : IDisposable
{
    private readonly TempFolder _dir = new();

    [MpiTheory]
    [MemberData(nameof(SeededFamilies.Names), MemberType = typeof(SeededFamilies))]
    public void TwoRanksOfBatchTwoMatchOneProcessOfBatchFour(string family)
    {
        string model = SeededFamilies.Write(_dir.PathOf(family), family);
        string data = TrainingRun.WriteData(_dir.PathOf("data"));
        string one = _dir.PathOf("one"), two = _dir.PathOf("two");
        List<string> Arguments(string outDir, int batch)
        {
            var args = TrainingRun.Arguments(data, outDir, batch, 8, "--dropout", "0");
            args[args.IndexOf(SeededLlama.Folder)] = model;
            return args;
        }
        TrainingRun.AssertSucceeded(TrainingRun.Single(Arguments(one, 4)));
        TrainingRun.AssertSucceeded(TrainingRun.TwoRanks(Arguments(two, 2)));

        var single = TrainingRun.Adapter(one);
        var ddp = TrainingRun.Adapter(two);
        Assert.True(single.Values.Any(v => v.Any(x => Math.Abs(x) > 1e-4)), "the adapter did not train");
        double difference = TensorAssert.MaxDiff(single, ddp);
        Assert.True(difference <= 1e-5, $"{family}: adapters differ by up to {difference}");
    }

    public void Dispose() => _dir.Dispose();
}
