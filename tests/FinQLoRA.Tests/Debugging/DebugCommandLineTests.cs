using FinQLoRA.Tests.Cli;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Debugging;

/// <summary>The <c>debug</c> commands' bad input: one line naming the option, exit 2, nothing written; and the branch
/// is hidden from the main help but has its own.</summary>
public sealed class DebugCommandLineTests
{
    public static TheoryData<string> Commands => ["dump-logits", "dump-dequant", "dump-grads"];

    /// <summary>Each command's own required options besides --model and --out.</summary>
    private static string[] OwnOptions(string command, TempFolder temp) => command switch
    {
        "dump-logits" => ["--prompt", "Once upon a time"],
        "dump-grads" => ["--data", temp.Write("train.jsonl", "{\"context\":\"a\",\"target\":\" b\"}\n")],
        _ => [],
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public void UnknownDeviceIsRefusedNamingDevice(string command)
    {
        using var temp = new TempFolder();
        string output = temp.PathOf("out.safetensors");
        var r = InProcessCli.Run(["debug", command, "--model", SeededLlama.Folder, "--device", "tpu", "--out", output, .. OwnOptions(command, temp)]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--device", r.Stderr);
        Assert.Contains("tpu", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(File.Exists(output));
    }

    [Theory]
    [MemberData(nameof(Commands))]
    public void MissingModelIsRefusedNamingModel(string command)
    {
        using var temp = new TempFolder();
        string output = temp.PathOf("out.safetensors");
        var r = InProcessCli.Run(["debug", command, "--model", temp.PathOf("no-such-model"), "--out", output, .. OwnOptions(command, temp)]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--model", r.Stderr);
        Assert.Contains("no-such-model", r.Stderr);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void MissingDataIsRefusedNamingData()
    {
        using var temp = new TempFolder();
        var r = InProcessCli.Run("debug", "dump-grads", "--model", SeededLlama.Folder, "--data", temp.PathOf("none.jsonl"), "--out", temp.PathOf("g.safetensors"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--data", r.Stderr);
        Assert.Contains("none.jsonl", r.Stderr);
    }

    [Fact]
    public void AnExistingOutputIsKeptWithoutOverwrite()
    {
        using var temp = new TempFolder();
        string output = temp.Write("out.safetensors", "mine");
        var r = InProcessCli.Run("debug", "dump-dequant", "--model", SeededLlama.Folder, "--bits", "4", "--out", output);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--overwrite", r.Stderr);
        Assert.Equal("mine", File.ReadAllText(output));
        DumpFiles.Run("debug", "dump-dequant", "--model", SeededLlama.Folder, "--bits", "4", "--out", output, "--overwrite");
        Assert.NotEqual("mine", File.ReadAllText(output));
    }

    [Fact]
    public void DebugIsHiddenFromTheMainHelpButHasItsOwn()
    {
        var main = InProcessCli.Run("--help");
        Assert.Equal(0, main.ExitCode);
        Assert.Contains("train", main.Stdout);
        Assert.DoesNotContain("debug", main.Stdout);
        var own = InProcessCli.Run("debug", "--help");
        Assert.Equal(0, own.ExitCode);
        foreach (string command in new[] { "dump-logits", "dump-dequant", "dump-grads" })
        {
            Assert.Contains(command, own.Stdout);
            // the help walk of HelpTests starts from the main help, so it never reaches a hidden command: render each here
            var help = InProcessCli.Run("debug", command, "--help");
            Assert.True(help.ExitCode == 0, $"debug {command} --help: {help.Stderr}");
            Assert.Contains("--device", help.Stdout);
            Assert.Contains("--out", help.Stdout);
        }
    }
}
