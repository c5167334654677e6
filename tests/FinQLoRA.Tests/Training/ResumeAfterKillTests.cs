using FinQLoRA.Data.Tasks;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Training;

/// <summary>
/// A run killed with SIGKILL right after a checkpoint and resumed with --resume ends with exactly (byte for byte)
/// the adapter of an uninterrupted run: optimizer, schedule, RNG (dropout) and data position all come back.
/// </summary>
public sealed class ResumeAfterKillTests
{
    [Fact]
    public void KilledAndResumedRunEndsWithTheSameAdapterBytes()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string[] Args(string outDir) =>
        [
            "train", "--model", SeededLlama.Folder, "--data", data, "--out", outDir,
            "--bits", "4", "--rank", "4", "--dropout", "0.1", "--max-steps", "10", "--batch-size", "8", "--grad-accum", "2",
            "--lr", "2e-3", "--warmup-steps", "2", "--save-every", "4", "--keep-checkpoints", "2", "--optimizer", "adamw", "--dtype", "f32",
        ];
        string straight = Path.Combine(dir.Path, "straight");
        var (code, output) = CliProcess.Run(TimeSpan.FromMinutes(10), Args(straight));
        Assert.True(code == 0, output);

        string killed = Path.Combine(dir.Path, "killed");
        TrainingRun.KillAfterCheckpointThenResume(Args(killed), killed, "checkpoint-4", TimeSpan.FromMinutes(10));

        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "adapter", "adapter_model.safetensors")),
            File.ReadAllBytes(Path.Combine(killed, "adapter", "adapter_model.safetensors")));
        Assert.Equal(2, Directory.GetDirectories(killed, "checkpoint-*").Length); // keep-checkpoints honoured
        foreach (string f in new[] { "metrics.jsonl", "run.json", "loss.png" })
            Assert.True(File.Exists(Path.Combine(killed, f)), f);
        Assert.Equal(File.ReadAllLines(Path.Combine(straight, "metrics.jsonl")).Length, File.ReadAllLines(Path.Combine(killed, "metrics.jsonl")).Length);
    }

    [Fact]
    public void StartingOverAnExistingRunWithoutResumeIsRefused()
    {
        using var dir = new TempFolder();
        Directory.CreateDirectory(Path.Combine(dir.Path, "out", "checkpoint-3"));
        File.WriteAllText(Path.Combine(dir.Path, "out", "checkpoint-3", "trainer_state.json"), "{}");
        string data = TrainingRun.WriteData(dir.Path);
        var (code, output) = CliProcess.Run(TimeSpan.FromMinutes(2), "train", "--model", SeededLlama.Folder,
            "--data", data, "--out", Path.Combine(dir.Path, "out"), "--max-steps", "2", "--warmup-steps", "0");
        Assert.Equal(2, code);
        Assert.Contains("--resume", output);
    }

    [Fact]
    public void MalformedTrainingDataNamesTheFileAndLine()
    {
        using var dir = new TempFolder();
        string data = Path.Combine(dir.Path, "bad.jsonl");
        File.WriteAllText(data, "{\"context\": \"a\", \"target\": \"b\"}\n{not json\n");
        var e = Assert.Throws<UserInputException>(() => FinQLoRA.Data.Tasks.ExampleJsonl.Read(data));
        Assert.Contains("bad.jsonl:2", e.Message);
    }
}
