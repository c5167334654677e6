using System.Text.Json.Nodes;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;

namespace FinQLoRA.Tests.Training;

/// <summary>Several sources in one run: NAME=FILE[:WEIGHT], mixed by weight, evaluated per task.</summary>
public sealed class TaskFamilyTests
{
    [Theory]
    [InlineData("fpb=data/fpb.jsonl:3", "fpb", "data/fpb.jsonl", 3.0)]
    [InlineData("fiqa=fiqa.jsonl", "fiqa", "fiqa.jsonl", 1.0)]
    [InlineData("/data/x=y/train.jsonl", "train", "/data/x=y/train.jsonl", 1.0)]
    [InlineData("runs/tfns.jsonl:0.5", "tfns", "runs/tfns.jsonl", 0.5)]
    public void SourcesParse(string value, string name, string file, double weight) =>
        Assert.Equal(new DataSource(name, file, weight), DataSource.Parse(value, "flags"));

    [Fact]
    public void ABadWeightIsNamed() =>
        Assert.Contains("weight", Assert.Throws<UserInputException>(() => DataSource.Parse("a=x.jsonl:-1", "flags")).Message);

    [Fact]
    public void MixingGivesEachSourceItsWeightedShareOfAnEpoch()
    {
        var a = Enumerable.Range(0, 100).Select(i => $"a{i}").ToList();
        var b = Enumerable.Range(0, 60).Select(i => $"b{i}").ToList();
        var mixed = DataSource.Mix([(new DataSource("a", "a", 1), a), (new DataSource("b", "b", 3), b)], seed: 5);
        Assert.Equal(160, mixed.Count);
        Assert.Equal(40, mixed.Count(x => x[0] == 'a'));   // 160 · 1/4
        Assert.Equal(120, mixed.Count(x => x[0] == 'b'));  // 160 · 3/4: every b twice
        Assert.All(b, x => Assert.Equal(2, mixed.Count(m => m == x)));
        Assert.Equal(mixed, DataSource.Mix([(new DataSource("a", "a", 1), a), (new DataSource("b", "b", 3), b)], seed: 5)); // seeded
    }

    [Fact]
    public void ATaskFamilyRunEvaluatesEveryTaskSeparately()
    {
        using var dir = new TempFolder();
        string first = TrainingRun.WriteData(Path.Combine(dir.Path, "a"));
        string second = TrainingRun.WriteData(Path.Combine(dir.Path, "b"));
        string run = Path.Combine(dir.Path, "run");
        var r = CliProcess.RunSeparately(TimeSpan.FromMinutes(3), "train", "--model", SeededLlama.Folder,
            "--data", $"sentiment={first}:2", "--data", $"headlines={second}", "--out", run, "--max-steps", "4", "--warmup-steps", "0",
            "--batch-size", "4", "--dtype", "f32", "--eval-split", "0.25", "--eval-every", "2", "--eval-samples", "2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("task family: 48 examples per epoch, sentiment 32, headlines 16", r.Stderr);
        var evals = TrainingRun.Metrics(run).Where(o => o["eval_loss"] != null).ToList();
        Assert.Equal(2, evals.Count);
        foreach (var e in evals)
        {
            var tasks = e["tasks"]!.AsObject();
            Assert.Equal(["headlines", "sentiment"], tasks.Select(t => t.Key).Order());
            Assert.All(tasks, t => Assert.Equal(8, t.Value!["eval_examples"]!.GetValue<int>()));
        }
        var lineage = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "run.json")))!["lineage"]!["inputs"]!["data"]!.AsArray();
        Assert.Equal(2, lineage.Count);
    }
}
