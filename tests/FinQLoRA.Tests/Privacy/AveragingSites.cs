using FinQLoRA.Recipes;
using FinQLoRA.Tests.Support;
using FinQLoRA.Tests.Training;
using FinQLoRA.Training;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Privacy;

/// <summary>
/// Four adapters of the seeded Llama, as two sites would train them: each site has its own data (the same 32 lines in
/// two orders, so the 16 examples seen differ), seed 7, 4 steps. Two are FFA-LoRA (one frozen A) and two ordinary LoRA
/// (A trained). Written once per test class; tests copy a folder before changing it.
/// </summary>
public sealed class AveragingSites : IDisposable
{
    private readonly TempFolder _dir = new();

    public AveragingSites()
    {
        string data1 = TrainingRun.WriteData(_dir.PathOf("data1"));
        string data2 = Path.Combine(_dir.PathOf("data2"), "train.jsonl");
        Directory.CreateDirectory(Path.GetDirectoryName(data2)!);
        File.WriteAllLines(data2, File.ReadAllLines(data1).Reverse());
        Ffa1 = Train(data1, "ffa1", frozenA: true);
        Ffa2 = Train(data2, "ffa2", frozenA: true);
        Plain1 = Train(data1, "plain1", frozenA: false);
        Plain2 = Train(data2, "plain2", frozenA: false);
    }

    public string Ffa1 { get; }
    public string Ffa2 { get; }
    public string Plain1 { get; }
    public string Plain2 { get; }

    public void Dispose() => _dir.Dispose();

    private string Train(string data, string name, bool frozenA)
    {
        var c = new TrainConfig
        {
            Model = SeededLlama.Folder, Data = data, Out = _dir.PathOf(name), Bits = 16, Dtype = ScalarType.Float32,
            Rank = 4, Alpha = 8, Dropout = 0.1, MaxSteps = 4, BatchSize = 4, MaxSeqLen = 48, Lr = 1e-2, WarmupSteps = 1,
            SaveEvery = 0, Seed = 7, LoraAFrozen = frozenA,
        };
        return FineTuneRecipe.Run(new FineTuneOptions { Config = c }).AdapterDir;
    }
}
