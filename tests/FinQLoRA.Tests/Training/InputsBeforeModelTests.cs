using FinQLoRA.Recipes;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;

namespace FinQLoRA.Tests.Training;

/// <summary>A fine-tune reads and checks its data before any model loads: the model path here does not exist, so
/// any error that names the data (and not the model) proves the data came first.</summary>
public sealed class InputsBeforeModelTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(2);
    private const string NoModel = "/nonexistent/llama-70b";

    /// <summary>A valid line, then one with bytes that are not UTF-8.</summary>
    private static string WriteBadData(string dir)
    {
        string path = Path.Combine(dir, "bad.jsonl");
        byte[] good = "{\"context\":\"Sentiment: up\\nAnswer: \",\"target\":\"positive\"}\n"u8.ToArray();
        byte[] bad = [.. "{\"context\":\""u8.ToArray(), 0xFF, 0xFE, .. "\",\"target\":\"negative\"}\n"u8.ToArray()];
        File.WriteAllBytes(path, [.. good, .. bad]);
        return path;
    }

    [Fact]
    public void ANonUtf8DataLineFailsWithOneLineBeforeTheModelLoads()
    {
        using var dir = new TempFolder();
        string data = WriteBadData(dir.Path);
        string run = dir.PathOf("run");
        var r = CliProcess.RunSeparately(Limit, "train", "--model", NoModel, "--data", data, "--out", run);
        string line = CliProcess.AssertOneLineError(r, $"{data}:2");
        Assert.Contains("UTF-8", line);
        Assert.DoesNotContain(NoModel, line);
        Assert.False(Directory.Exists(run), "a refused run created its folder");
    }

    [Fact]
    public void BadEvalDataFailsBeforeTheModelLoads()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string eval = WriteBadData(dir.Path);
        var r = CliProcess.RunSeparately(Limit, "train", "--model", NoModel, "--data", data, "--eval-data", eval, "--out", dir.PathOf("run"));
        Assert.True(r.ExitCode == 2 && r.Stdout.Length == 0, $"exit {r.ExitCode}, stdout [{r.Stdout}], stderr [{r.Stderr}]");
        string last = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        Assert.StartsWith("error: ", last);
        Assert.Contains($"{eval}:2", last);
    }

    [Fact]
    public void TheRecipeReadsTheDataBeforeTheModel()
    {
        using var dir = new TempFolder();
        var config = new TrainConfig { Model = NoModel, Data = WriteBadData(dir.Path), Out = dir.PathOf("run") };
        var progress = new List<string>();
        var e = Assert.Throws<UserInputException>(() => FineTuneRecipe.Run(new FineTuneOptions { Config = config, Progress = progress.Add }));
        Assert.Contains($"{config.Data}:2", e.Message);
        Assert.Empty(progress);
    }

    [Fact]
    public void GoodDataThenAMissingModelNamesTheModel()
    {
        // the other half of the order: with the data sound, the model is what fails, before any progress line
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        var r = CliProcess.RunSeparately(Limit, "train", "--model", NoModel, "--data", data, "--out", dir.PathOf("run"));
        CliProcess.AssertOneLineError(r, NoModel);
    }
}
