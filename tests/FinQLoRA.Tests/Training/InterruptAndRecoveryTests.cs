using System.Diagnostics;
using FinQLoRA.IO;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;

namespace FinQLoRA.Tests.Training;

/// <summary>
/// Work survives: Ctrl-C / SIGTERM save a checkpoint that resumes to exactly the uninterrupted adapter; a run folder
/// in use is refused; leftovers of killed runs are cleared; a damaged checkpoint falls back to the one before; a
/// diverging run never names a checkpoint that holds the diverged weights.
/// </summary>
public sealed class InterruptAndRecoveryTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(5);

    /// <summary>The train command line; <paramref name="overrides"/> are flag/value pairs replacing the defaults.</summary>
    private static string[] Args(string data, string outDir, params string[] overrides)
    {
        var flags = new Dictionary<string, string>
        {
            ["--model"] = SeededLlama.Folder, ["--data"] = data, ["--out"] = outDir,
            ["--bits"] = "4", ["--rank"] = "4", ["--dropout"] = "0.1", ["--max-steps"] = "12", ["--batch-size"] = "4", ["--grad-accum"] = "2",
            ["--lr"] = "2e-3", ["--warmup-steps"] = "2", ["--save-every"] = "0", ["--optimizer"] = "adamw", ["--dtype"] = "f32",
        };
        for (int i = 0; i < overrides.Length; i += 2) flags[overrides[i]] = overrides[i + 1];
        return ["train", .. flags.SelectMany(f => new[] { f.Key, f.Value })];
    }

    /// <summary>Sends a signal as a user's shell would (kill -INT / -TERM).</summary>
    private static void Kill(int pid, int signal)
    {
        var kill = CliProcess.RunProgram("kill", [$"-{signal}", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10));
        Assert.True(kill.ExitCode == 0, $"kill -{signal} {pid}: {kill.Stderr}");
    }

    private static byte[] AdapterBytes(string run) => File.ReadAllBytes(Path.Combine(run, "adapter", "adapter_model.safetensors"));

    [Theory]
    [InlineData(2, 130, 3)]
    [InlineData(15, 143, 7)]
    public async Task ASignalSavesACheckpointAndResumingEndsAsIfUninterrupted(int signal, int exitCode, int afterStep)
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        // long enough that the signal lands with steps still to go
        string[] Run(string outDir) => Args(data, outDir, "--max-steps", "40");
        string straight = Path.Combine(dir.Path, "straight");
        var r = CliProcess.RunSeparately(Limit, Run(straight));
        Assert.True(r.ExitCode == 0, r.Stderr);

        string run = Path.Combine(dir.Path, "interrupted");
        string stderr;
        using (var p = CliProcess.Start(Run(run)))
        {
            var err = p.StandardError.ReadToEndAsync();
            var outText = p.StandardOutput.ReadToEndAsync();
            string metrics = Path.Combine(run, "metrics.jsonl");
            var deadline = DateTime.UtcNow + Limit;
            while (!p.HasExited && DateTime.UtcNow < deadline &&
                   (!File.Exists(metrics) || File.ReadAllLines(metrics).Length < afterStep)) Thread.Sleep(10);
            Assert.False(p.HasExited, "the run ended before it could be interrupted");
            Kill(p.Id, signal);
            Assert.True(p.WaitForExit(Limit));
            stderr = await err;
            string stdout = await outText;
            Assert.True(p.ExitCode == exitCode, $"exit {p.ExitCode}: {stderr} {stdout}");
        }
        var checkpoints = TrainingCheckpoint.List(run);
        Assert.Single(checkpoints);
        Assert.InRange(checkpoints[0].Step, afterStep, 39);
        Assert.Contains($"checkpoint-{checkpoints[0].Step}", stderr);
        Assert.Contains("--resume", stderr);
        Assert.False(File.Exists(Path.Combine(run, FolderLock.FileName)), "the lock was not released");
        Assert.False(Directory.Exists(Path.Combine(run, "adapter")));

        r = CliProcess.RunSeparately(Limit, [.. Run(run), "--resume"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(AdapterBytes(straight), AdapterBytes(run));
    }

    [Fact]
    public void ResumeWithoutACheckpointOrWithAnotherRankIsRefused()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string run = Path.Combine(dir.Path, "run");
        CliProcess.AssertOneLineError(CliProcess.RunSeparately(Limit, [.. Args(data, run), "--resume"]), "no complete checkpoint");
        Assert.False(Directory.Exists(run) && Directory.EnumerateFileSystemEntries(run).Any(), "a refused resume wrote files");

        var r = CliProcess.RunSeparately(Limit, Args(data, run, "--save-every", "4"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        CliProcess.AssertOneLineError(CliProcess.RunSeparately(Limit, [.. Args(data, run, "--save-every", "4"), "--resume", "--rank", "8"]), "rank = 8");
    }

    [Fact]
    public void ARunFolderInUseIsRefusedNamingItsHolderAndAStaleLockIsTakenOver()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string run = Path.Combine(dir.Path, "run");
        Directory.CreateDirectory(run);
        OutputMarker.Write(run, "training run");
        using (var holder = Process.Start(new ProcessStartInfo("sleep", "60"))!)
        {
            File.WriteAllText(Path.Combine(run, FolderLock.FileName), FolderLock.Describe(holder.Id));
            CliProcess.AssertOneLineError(CliProcess.RunSeparately(Limit, Args(data, run, "--max-steps", "2")), $"process {holder.Id}");
            holder.Kill();
            holder.WaitForExit();
        }
        // the holder is gone: its lock is stale
        var r = CliProcess.RunSeparately(Limit, Args(data, run, "--max-steps", "2"));
        Assert.True(r.ExitCode == 0, r.Stderr);
    }

    [Fact]
    public void LeftoversOfAKilledRunAreClearedAndADamagedCheckpointFallsBack()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string straight = Path.Combine(dir.Path, "straight"), run = Path.Combine(dir.Path, "run");
        var r = CliProcess.RunSeparately(Limit, Args(data, straight, "--save-every", "4", "--keep-checkpoints", "3"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        r = CliProcess.RunSeparately(Limit, Args(data, run, "--save-every", "4", "--keep-checkpoints", "3"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        // as if killed after checkpoint-8: no final adapter or record yet
        Directory.Delete(Path.Combine(run, "adapter"), recursive: true);
        File.Delete(Path.Combine(run, "run.json"));
        // what a SIGKILL mid-save leaves: a half-built checkpoint folder and a temp file of a dead process
        int dead = DeadPid();
        Directory.CreateDirectory(Path.Combine(run, $"checkpoint-12.{dead}.tmp", "adapter"));
        File.WriteAllText(Path.Combine(run, $"run.json.{dead}.{Guid.NewGuid():N}.tmp"), "{");
        File.WriteAllText(Path.Combine(run, "loss.png.tmp.png"), "");
        // and checkpoint-8 truncated (a disk that filled up, say)
        string tensors = Path.Combine(run, "checkpoint-8", "training_state.safetensors");
        File.WriteAllBytes(tensors, File.ReadAllBytes(tensors)[..40]);

        r = CliProcess.RunSeparately(Limit, [.. Args(data, run, "--save-every", "4", "--keep-checkpoints", "3"), "--resume"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("checkpoint-8 is incomplete or damaged", r.Stderr);
        Assert.Contains("resuming from", r.Stderr);
        Assert.Equal(AdapterBytes(straight), AdapterBytes(run));
        Assert.Empty(Directory.GetFileSystemEntries(run, "*.tmp*"));
    }

    /// <summary>A diverging run stops; no checkpoint holding the diverged weights is named or resumable.</summary>
    [Fact]
    public void DivergenceNamesOnlyACheckpointWhoseWeightsWereShownSound()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string[] Absurd(string outDir, params string[] extra) =>
            Args(data, outDir, ["--bits", "16", "--lr", "1e30", "--max-grad-norm", "0", "--save-every", "1", "--lr-schedule", "constant", "--warmup-steps", "0", .. extra]);

        // from scratch: the first step's update already blows up, so checkpoint-1 is not good
        string fresh = Path.Combine(dir.Path, "fresh");
        var r = CliProcess.RunSeparately(Limit, Absurd(fresh));
        Assert.True(r.ExitCode == 3, r.Stderr);
        Assert.Contains("no checkpoint before it is good", r.Stderr);
        Assert.Empty(TrainingCheckpoint.List(fresh));
        Assert.True(Directory.Exists(Path.Combine(fresh, "checkpoint-1.diverged")));

        // sound steps first, then the absurd rate on --resume: the checkpoint before the blow-up is named, and it is finite
        string run = Path.Combine(dir.Path, "run");
        r = CliProcess.RunSeparately(Limit, Args(data, run, "--bits", "16", "--max-steps", "4", "--save-every", "2"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        r = CliProcess.RunSeparately(Limit, [.. Absurd(run), "--resume"]);
        Assert.True(r.ExitCode == 3, r.Stderr);
        Assert.Contains("last good checkpoint is", r.Stderr);
        Assert.Contains("checkpoint-2", r.Stderr);
        Assert.True(Directory.Exists(Path.Combine(run, "checkpoint-3.diverged")));
        Assert.Equal([2], TrainingCheckpoint.List(run).Select(c => c.Step));
        using var adapter = new FinQLoRA.Formats.Checkpoints.SafetensorsFile(Path.Combine(run, "checkpoint-2", "adapter", "adapter_model.safetensors"));
        foreach (var e in adapter.Entries)
        {
            using var t = adapter.Read(e.Name);
            Assert.True(TensorAssert.MaxAbs(t) < 100, $"{e.Name} holds {TensorAssert.MaxAbs(t)}");
        }
    }

    private static int DeadPid()
    {
        using var p = Process.Start(new ProcessStartInfo("true"))!;
        p.WaitForExit();
        return p.Id;
    }
}
