using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Training;

/// <summary>
/// On every family's quirky model, <c>finqlora train</c> (4-bit, r4, all-linear, dropout, packing) for 20 steps,
/// killed with SIGKILL right after a checkpoint and resumed with --resume, ends with the uninterrupted run's adapter
/// byte for byte, as <see cref="ResumeAfterKillTests"/> shows for Llama.
/// </summary>
public sealed class FamilyResumeAfterKillTests
{
    [Theory]
    [MemberData(nameof(SeededFamilies.Names), MemberType = typeof(SeededFamilies))]
    public void KilledAndResumedRunEndsWithTheSameAdapterBytes(string family)
    {
        using var dir = new TempFolder();
        string model = SeededFamilies.Write(dir.PathOf("model"), family);
        string data = TrainingRun.WriteData(dir.Path);
        string[] Args(string outDir) =>
        [
            "train", "--model", model, "--data", data, "--out", outDir, "--bits", "4", "--rank", "4", "--targets", "all-linear",
            "--dropout", "0.1", "--packing", "--max-steps", "20", "--batch-size", "2", "--max-seq-len", "64",
            "--lr", "2e-3", "--warmup-steps", "2", "--save-every", "8", "--optimizer", "adamw", "--dtype", "f32",
        ];
        string straight = dir.PathOf("straight");
        var (code, output) = CliProcess.Run(TimeSpan.FromMinutes(5), Args(straight));
        Assert.True(code == 0, output);

        string killed = dir.PathOf("killed");
        TrainingRun.KillAfterCheckpointThenResume(Args(killed), killed, "checkpoint-8", TimeSpan.FromMinutes(5));
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "adapter", "adapter_model.safetensors")),
            File.ReadAllBytes(Path.Combine(killed, "adapter", "adapter_model.safetensors")));
    }
}
