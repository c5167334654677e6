using FinQLoRA.IO;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.IO;

/// <summary>
/// The data-loss cases found by hand, through the real CLI: each is refused before any work, with exit 2 and one
/// line on stderr, and every file that was there before (inputs and a user's own file) survives byte for byte.
/// None needs a real model: the check comes before anything is read.
/// </summary>
public sealed class OutputsNeverDestroyInputsTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(2);

    /// <summary>Every file under <paramref name="root"/> with its bytes.</summary>
    private static Dictionary<string, byte[]> Snapshot(string root) =>
        Directory.GetFiles(root, "*", SearchOption.AllDirectories).ToDictionary(f => Path.GetRelativePath(root, f), File.ReadAllBytes);

    private static void AssertUnchanged(Dictionary<string, byte[]> before, string root)
    {
        var after = Snapshot(root);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (name, bytes) in before) Assert.True(bytes.AsSpan().SequenceEqual(after[name]), $"{name} changed");
    }

    /// <summary>A folder that looks like a user's model: notes, provenance, weights.</summary>
    private static string UserModel(string root)
    {
        string model = Path.Combine(root, "model");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "config.json"), "{\"model_type\":\"llama\"}");
        File.WriteAllBytes(Path.Combine(model, "model.safetensors"), [1, 2, 3, 4]);
        File.WriteAllText(Path.Combine(model, "NOTES.md"), "provenance: approved by model risk, 2026-10-01");
        return model;
    }

    private static string UserAdapter(string root)
    {
        string adapter = Path.Combine(root, "adapter");
        Directory.CreateDirectory(adapter);
        File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), "{\"r\":4}");
        File.WriteAllBytes(Path.Combine(adapter, "adapter_model.safetensors"), [5, 6, 7]);
        return adapter;
    }

    public static TheoryData<string> Cases => new()
    {
        "merge-out-is-model", "merge-out-is-cwd", "convert-hf-into-folder-with-source", "convert-gguf-into-model",
        "export-into-adapter", "data-build-over-source", "quantize-into-foreign-folder", "report-into-foreign-folder",
        "train-out-is-model", "train-out-is-foreign-folder", "merge-into-foreign-folder", "eval-out-inside-model",
        "model-fetch-into-foreign-folder", "train-out-is-a-file",
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void IsRefusedAndEveryFileSurvives(string name)
    {
        using var dir = new TempFolder();
        string model = UserModel(dir.Path), adapter = UserAdapter(dir.Path);
        string foreign = Path.Combine(dir.Path, "reports");
        Directory.CreateDirectory(foreign);
        File.WriteAllText(Path.Combine(foreign, "q3-board-pack.xlsx"), "the user's own file");
        string source = Path.Combine(dir.Path, "s.jsonl");
        File.WriteAllText(source, "{\"context\":\"a\",\"target\":\"b\"}\n");
        string gguf = Path.Combine(foreign, "base.gguf");
        File.WriteAllBytes(gguf, [0x47, 0x47, 0x55, 0x46]);
        string? cwd = null;
        string[] args = name switch
        {
            "merge-out-is-model" => ["merge", "--model", model, "--adapter", adapter, "--out", model],
            "merge-out-is-cwd" => ["merge", "--model", model, "--adapter", adapter, "--out", "."],
            "convert-hf-into-folder-with-source" => ["convert", "--model", gguf, "--to", "hf", "--out", foreign],
            "convert-gguf-into-model" => ["convert", "--model", model, "--to", "gguf", "--out", Path.Combine(model, "model.safetensors")],
            "export-into-adapter" => ["export-adapter", "--adapter", adapter, "--out", Path.Combine(adapter, "adapter_model.safetensors")],
            "data-build-over-source" => ["data", "build", "--task", "fpb", "--source", source, "--out", source],
            "quantize-into-foreign-folder" => ["quantize", "--model", model, "--bits", "4", "--out", foreign, "--overwrite"],
            "report-into-foreign-folder" => ["report", model, "--out", foreign, "--overwrite"],
            "train-out-is-model" => ["train", "--model", model, "--data", source, "--out", model],
            "train-out-is-foreign-folder" => ["train", "--model", model, "--data", source, "--out", foreign],
            "merge-into-foreign-folder" => ["merge", "--model", model, "--adapter", adapter, "--out", foreign, "--overwrite"],
            "eval-out-inside-model" => ["eval", "--model", model, "--tasks", "fpb", "--data", source, "--out", Path.Combine(model, "eval")],
            "model-fetch-into-foreign-folder" => ["model", "fetch", "acme/finance-llm", "--out", foreign],
            "train-out-is-a-file" => ["train", "--model", model, "--data", source, "--out", Path.Combine(foreign, "q3-board-pack.xlsx")],
            _ => throw new ArgumentException(name),
        };
        if (name == "merge-out-is-cwd") cwd = dir.Path;
        var before = Snapshot(dir.Path);
        var result = CliProcess.RunSeparatelyIn(cwd, Limit, args);
        CliProcess.AssertOneLineError(result);
        AssertUnchanged(before, dir.Path);
    }

    [Fact]
    public void AnOwnOutputIsReplacedOnlyWithOverwrite()
    {
        using var dir = new TempFolder();
        string source = Path.Combine(dir.Path, "s.jsonl");
        File.WriteAllText(source, "{\"context\":\"a\",\"target\":\"b\"}\n");
        string outFile = Path.Combine(dir.Path, "train.jsonl");
        var first = CliProcess.RunSeparately(Limit, "data", "build", "--task", "fpb", "--source", source, "--out", outFile);
        Assert.True(first.ExitCode == 0, first.Stderr);
        byte[] written = File.ReadAllBytes(outFile);
        CliProcess.AssertOneLineError(CliProcess.RunSeparately(Limit, "data", "build", "--task", "fpb", "--source", source, "--out", outFile), "--overwrite");
        Assert.Equal(written, File.ReadAllBytes(outFile));
        var again = CliProcess.RunSeparately(Limit, "data", "build", "--task", "fpb", "--source", source, "--out", outFile, "--overwrite");
        Assert.True(again.ExitCode == 0, again.Stderr);
    }

    [Fact]
    public void AReadOnlyOrFullDiskIsOneLineNamingThePath()
    {
        // A private mount namespace (unshare -rm) holds a read-only and a 16 KiB tmpfs; they vanish with the process.
        using var dir = new TempFolder();
        string source = Path.Combine(dir.Path, "big.jsonl");
        File.WriteAllLines(source, Enumerable.Range(0, 2000).Select(i => $"{{\"context\":\"headline number {i} about quarterly earnings\",\"target\":\"neutral\"}}"));
        string ro = Path.Combine(dir.Path, "ro"), full = Path.Combine(dir.Path, "full");
        Directory.CreateDirectory(ro);
        Directory.CreateDirectory(full);
        string cli = CliProcess.ShellCommand("data", "build", "--task", "fpb", "--source", source);
        string script = $"mount -t tmpfs -o ro,size=64k tmpfs '{ro}' && mount -t tmpfs -o size=16k tmpfs '{full}' || exit 99; " +
                        $"{cli} --out '{ro}/out.jsonl'; echo \"rc=$?\"; {cli} --out '{full}/out.jsonl'; echo \"rc=$?\"; ls -A '{full}'";
        var (exitCode, stdout, stderr) = CliProcess.RunProgram("unshare", ["-rm", "sh", "-c", script], Limit);
        Assert.True(exitCode != 99, $"could not mount a tmpfs in a private namespace: {stderr}");
        var errors = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(errors.Length == 2, stderr);
        Assert.Contains($"{ro}/out.jsonl", errors[0]);
        Assert.Contains("read-only", errors[0]);
        Assert.Contains($"{full}/out.jsonl", errors[1]);
        Assert.Contains("no space left", errors[1]);
        // stdout: the two exit codes, then the listing of the full disk: empty (no temp file left behind)
        Assert.Equal(["rc=2", "rc=2"], stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
