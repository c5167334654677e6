using FinQLoRA.Tests.Distributed;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Training;

/// <summary>
/// Data parallelism stays exact on the other families: <c>mpirun -np 2 finqlora train --batch-size 2</c> and
/// <c>finqlora train --batch-size 4</c> on a quirky Qwen3 (q/k norms, biases) and Gemma 2 (sandwich norms, soft-caps,
/// sliding window shorter than the examples) end with the same adapter, as <see cref="DataParallelEquivalenceMpiTests"/>
/// shows for Llama.
/// </summary>
[Collection(MpiCollection.Name)]
public sealed class FamilyDataParallelMpiTests : IDisposable
{
    private readonly TempFolder _dir = new();

    [MpiTheory]
    [InlineData("qwen3")]
    [InlineData("gemma2")]
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
