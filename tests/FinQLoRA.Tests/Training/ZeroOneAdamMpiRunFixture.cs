namespace FinQLoRA.Tests.Training;

/// <summary>
/// One 2-rank 0/1 Adam run of 12 steps shared by the tests of <see cref="ZeroOneAdamDataParallelMpiTests"/>: dropout 0.1,
/// variance frozen after step 4, local-step interval doubling every 2 local steps up to 4, so the checkpoint at step 7
/// falls between two 1-bit synchronisations, when the ranks' weights, momenta and error-feedback buffers all differ.
/// </summary>
public sealed class ZeroOneAdamMpiRunFixture : IDisposable
{
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "finqlora-ddp-01-" + Guid.NewGuid().ToString("N"));
    public string Data { get; }
    public string Full => Path.Combine(Dir, "full");
    public string Checkpoint => Path.Combine(Full, "checkpoint-7");

    private readonly Lazy<Distributed.MpiJob> _run;

    public ZeroOneAdamMpiRunFixture()
    {
        Data = TrainingRun.WriteData(Dir);
        _run = new Lazy<Distributed.MpiJob>(() => TrainingRun.TwoRanks(Arguments(Full)));
    }

    /// <summary>Runs the job the first time a test asks (so skipped tests start nothing).</summary>
    public Distributed.MpiJob Run => _run.Value;

    public List<string> Arguments(string outDir, params string[] extra) => TrainingRun.Arguments(Data, outDir, 2, 12,
    [
        "--optimizer", "zero-one-adam", "--var-freeze-step", "3", "--local-step-scaler", "2", "--local-step-clipper", "4",
        "--dropout", "0.1", "--save-every", "7", .. extra,
    ]);

    /// <summary>A fresh run folder holding only a copy of the step-7 checkpoint.</summary>
    public string CopyOfCheckpoint(string name)
    {
        string target = Path.Combine(Dir, name, "checkpoint-7");
        Directory.CreateDirectory(target);
        foreach (string file in Directory.EnumerateFiles(Checkpoint, "*", SearchOption.AllDirectories))
        {
            string copy = Path.Combine(target, Path.GetRelativePath(Checkpoint, file));
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(file, copy);
        }
        return Path.Combine(Dir, name);
    }

    public void Dispose()
    {
        if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true);
    }
}
