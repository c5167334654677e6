using FinQLoRA.Adapters;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Tests.Cli;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Training;

/// <summary>
/// <c>train --adapter-dtype</c>: the final adapter is written in that dtype (the safetensors header says so, the data is
/// half the bytes at 16 bits, run.json records the file's size), the checkpoint keeps the fp32 master weights, the
/// 16-bit file holds exactly those weights rounded, reads back through the one adapter loader and passes
/// <c>verify</c>; PEFT's default (fp32) without the flag; a bad value is refused naming the key (as every train key's value is).
/// </summary>
public sealed class AdapterDtypeTests
{
    [Fact]
    public void TheFinalAdapterIsSavedInTheDtypeAskedForAndCheckpointsStayFp32()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        // the same seeded run three times (training on the CPU is deterministic): PEFT's default, then 16-bit exports
        string fp32 = Train(dir, data, "fp32-default", flag: null);
        var master = Entries(fp32);
        Assert.All(master, e => Assert.Equal(ScalarType.Float32, e.DType));
        long elements = master.Sum(e => e.ElementCount);
        Assert.Equal(elements * 4, DataBytes(fp32));
        Assert.Equal("fp32", RunRecord.Read(Path.Combine(dir.PathOf("fp32-default"), RunRecord.FileName))["config"]!["adapter_dtype"]!.GetValue<string>());

        using var model = SeededLlama.Load();
        var shapes = LoraTargetShapes.Of(model);
        foreach (var (flag, dtype) in new[] { ("bf16", ScalarType.BFloat16), ("fp16", ScalarType.Float16) })
        {
            string final = Train(dir, data, flag, flag);
            string run = Path.GetDirectoryName(final)!;
            var entries = Entries(final);
            Assert.All(entries, e => Assert.Equal(dtype, e.DType));
            Assert.Equal(elements, entries.Sum(e => e.ElementCount));
            Assert.Equal(elements * 2, DataBytes(final)); // half the fp32 tensor data
            Assert.All(Entries(Path.Combine(run, "checkpoint-1", "adapter")), e => Assert.Equal(ScalarType.Float32, e.DType));
            var record = RunRecord.Read(Path.Combine(run, RunRecord.FileName));
            Assert.Equal(new FileInfo(Path.Combine(final, PeftAdapterFiles.WeightsFileName)).Length, record["adapter_bytes"]!.GetValue<long>());
            Assert.Equal(flag, record["config"]!["adapter_dtype"]!.GetValue<string>());

            // the 16-bit weights are the fp32 run's rounded once, read back through the one adapter reader
            var (_, saved) = PeftAdapterFiles.ReadToHost(final, shapes);
            var (_, reference) = PeftAdapterFiles.ReadToHost(fp32, shapes);
            using (saved)
            using (reference)
            {
                Assert.Equal(reference.Parts.Count, saved.Parts.Count);
                foreach (var (m, s) in reference.Parts.Zip(saved.Parts))
                {
                    using var a = m.A.to(dtype).to(ScalarType.Float32);
                    using var b = m.B.to(dtype).to(ScalarType.Float32);
                    TensorAssert.BitIdentical(a, s.A, $"{flag} layer {m.Layer} {m.Projection} A");
                    TensorAssert.BitIdentical(b, s.B, $"{flag} layer {m.Layer} {m.Projection} B");
                }
            }
            PeftAdapterFiles.Load(final, model, adapterName: flag);
            var verify = InProcessCli.Run("verify", run);
            Assert.True(verify.ExitCode == 0, verify.Stderr + verify.Stdout);
        }
    }

    /// <summary>Two steps with a checkpoint after the first; returns the final adapter folder.</summary>
    private static string Train(TempFolder dir, string data, string name, string? flag)
    {
        string run = dir.PathOf(name);
        string[] extra = flag is null ? ["--save-every", "1"] : ["--save-every", "1", "--adapter-dtype", flag];
        var r = CliProcess.RunSeparately(TrainingRun.Limit, [.. TrainingRun.Arguments(data, run, batchSize: 4, steps: 2, extra).Skip(1)]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return Path.Combine(run, FinalAdapter.FolderName);
    }

    [Fact]
    public void ABadAdapterDtypeIsRefusedNamingTheOption()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string line = CliProcess.AssertOneLineError(InProcessCli.Run("train", "--model", SeededLlama.Folder, "--data", data,
            "--out", dir.PathOf("run"), "--adapter-dtype", "int8"), "adapter_dtype");
        Assert.Contains("int8 is invalid; expected fp32, bf16 or fp16", line);
        Assert.False(Directory.Exists(dir.PathOf("run")));
    }

    [Fact]
    public void PeftsDefaultIsFp32ForEveryBaseDtype()
    {
        foreach (var dtype in new[] { ScalarType.BFloat16, ScalarType.Float16, ScalarType.Float32 })
        {
            Assert.Equal(ScalarType.Float32, AdapterDtypes.PeftDefault(dtype));
            Assert.Equal(ScalarType.Float32, new TrainConfig { Dtype = dtype }.SavedAdapterDtype);
        }
        Assert.Equal(ScalarType.BFloat16, new TrainConfig { AdapterDtype = ScalarType.BFloat16 }.SavedAdapterDtype);
    }

    private static List<TensorEntry> Entries(string adapterDir)
    {
        using var file = new SafetensorsFile(Path.Combine(adapterDir, PeftAdapterFiles.WeightsFileName));
        return file.Entries.ToList();
    }

    /// <summary>The file's data area: its length less the 8-byte length and the header.</summary>
    private static long DataBytes(string adapterDir)
    {
        string path = Path.Combine(adapterDir, PeftAdapterFiles.WeightsFileName);
        using var f = File.OpenRead(path);
        var length = new byte[8];
        f.ReadExactly(length);
        return f.Length - 8 - BitConverter.ToInt64(length);
    }
}
