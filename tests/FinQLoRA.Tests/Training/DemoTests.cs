using System.Text.Json.Nodes;
using FinQLoRA.Demo;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Training;

public sealed class DemoTests
{
    /// <summary>A shortened demo (fewer examples, one epoch) runs end to end with no files from outside the repo and
    /// writes summary.json with the promised fields; the adapter lowered the training loss.</summary>
    [Fact]
    public void ShortDemoRunsEndToEndAndWritesTheSummary()
    {
        using var dir = new TempFolder();
        var summary = DemoRunner.Run(dir.Path, _ => { }, trainExamples: 96, testExamples: 24, epochs: 2);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "summary.json")))!;
        foreach (string key in new[] { "base_accuracy", "finetuned_accuracy", "train_seconds", "adapter_bytes" })
            Assert.NotNull(json[key]);
        Assert.True(summary.AdapterBytes > 0);
        var losses = File.ReadLines(Path.Combine(dir.Path, "train", "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["loss"]!.GetValue<double>()).ToList();
        Assert.True(losses[^1] < losses[0], $"loss went from {losses[0]} to {losses[^1]}");
    }

    [Fact]
    public void SyntheticTaskKeepsTestItemsOutOfTraining()
    {
        var (train, test) = SyntheticSentiment.Make(200, 50, seed: 3);
        Assert.Empty(train.Select(e => e.Context).Intersect(test.Select(e => e.Context)));
        Assert.Equal(3, train.Select(e => e.Target).Distinct().Count());
    }
}
