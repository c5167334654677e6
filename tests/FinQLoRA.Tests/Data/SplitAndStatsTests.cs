using FinQLoRA.Data.Tasks;
using FinQLoRA.Tests.Support;
using Xunit;

namespace FinQLoRA.Tests.Data;

public sealed class SplitAndStatsTests
{
    private static List<Example> Examples(int n) =>
        Enumerable.Range(0, n).SelectMany(i => new[]
        {
            new Example(FinLoraPrompt.Classification("Q1", $"headline {i}"), "Yes"),
            new Example(FinLoraPrompt.Classification("Q2", $"Headline  {i}"), "No"), // same input after normalising
        }).ToList();

    [Fact]
    public void Split_is_deterministic_grouped_by_input_and_near_the_fraction()
    {
        var all = Examples(2000);
        var (train, test) = TaskSplitter.Split(all, 0.2, seed: 11);
        var (train2, test2) = TaskSplitter.Split(all.AsEnumerable().Reverse().ToList(), 0.2, seed: 11);
        Assert.Equal(test.Select(InputText.Of).ToHashSet(), test2.Select(InputText.Of).ToHashSet());
        Assert.Equal(all.Count, train.Count + test.Count);
        Assert.InRange(test.Count / (double)all.Count, 0.17, 0.23);
        var trainInputs = train.Select(InputText.Of).ToHashSet();
        Assert.DoesNotContain(test, e => trainInputs.Contains(InputText.Of(e)));
        var (_, otherSeed) = TaskSplitter.Split(all, 0.2, seed: 12);
        Assert.NotEqual(test.Select(InputText.Of).ToHashSet(), otherSeed.Select(InputText.Of).ToHashSet());
    }

    [Fact]
    public void Exclusion_matches_inputs_after_collapsing_whitespace_and_case()
    {
        using var dir = new TempFolder();
        string source = dir.Write("s.txt", "Profit rose .@positive\nSales fell .@negative\n");
        string exclude = dir.Write("x.jsonl", ExampleJsonl.Line(new Example(FinLoraPrompt.Classification("any", "PROFIT   rose\t."), "x")) + "\n");
        var result = TaskDataBuilder.Build("fpb", [source], DataSplit.Train, [exclude], 1);
        Assert.Equal(1, result.ExcludedCount);
        Assert.Equal("negative", result.Examples.Single().Target);
    }

    [Fact]
    public void Excluding_a_source_from_itself_is_refused_even_through_another_path_or_a_symlink()
    {
        using var dir = new TempFolder();
        string source = dir.Write("s.jsonl", ExampleJsonl.Line(new Example(FinLoraPrompt.Classification("q", "Profit rose"), "positive")) + "\n");
        string link = dir.PathOf("link.jsonl");
        File.CreateSymbolicLink(link, source);
        foreach (string exclude in new[] { source, Path.Combine(dir.Path, ".", "s.jsonl"), link })
        {
            var e = Assert.Throws<UserInputException>(() => TaskDataBuilder.Build("fpb", [source], DataSplit.Train, [exclude], 1));
            Assert.Equal($"--exclude {exclude} is the same file as --source {source}; excluding a source from itself leaves no examples — pass the held-out test set to --exclude", FinQLoRA.Cli.FlagNames.Render(e));
        }
    }

    [Fact]
    public void An_exclusion_that_leaves_nothing_is_refused()
    {
        using var dir = new TempFolder();
        string line = ExampleJsonl.Line(new Example(FinLoraPrompt.Classification("q", "Profit rose"), "positive")) + "\n";
        string source = dir.Write("s.jsonl", line);
        string copy = dir.Write("copy.jsonl", line);
        var e = Assert.Throws<UserInputException>(() => TaskDataBuilder.Build("fpb", [source], DataSplit.Train, [copy], 1));
        Assert.Contains($"every one of the 1 fpb examples of {source} occurs in --exclude {copy}", FinQLoRA.Cli.FlagNames.Render(e));
    }

    [Fact]
    public void Stats_count_targets_and_give_nearest_rank_percentiles()
    {
        // Context word counts 1..10 plus the prompt scaffolding words: use a counter that counts characters instead.
        var examples = Enumerable.Range(1, 10).Select(i => new Example(new string('x', i), i <= 7 ? "a" : "b")).ToList();
        var stats = DatasetStats.Compute(examples, s => s.Length);
        Assert.Equal(10, stats.Count);
        Assert.Equal([new("a", 7), new KeyValuePair<string, int>("b", 3)], stats.TargetCounts);
        // Nearest rank: p50 = 5th of 10, p90 = 9th, p95 = p99 = 10th.
        Assert.Equal(new LengthPercentiles(1, 5, 9, 10, 10, 10, 5.5), stats.ContextLength);
        Assert.Equal("tokens", stats.LengthUnit);
        Assert.Equal("words", DatasetStats.Compute(examples).LengthUnit);
        Assert.Equal(3, DatasetStats.WordCount(" a  b\nc "));
    }

    [Fact]
    public void Jsonl_lines_are_formatted_like_python_json_dumps()
    {
        var e = new Example("a \"q\" \\ \n\t\u0001 é 議 🤣", "t");
        Assert.Equal("{\"context\": \"a \\\"q\\\" \\\\ \\n\\t\\u0001 é 議 🤣\", \"target\": \"t\"}", ExampleJsonl.Line(e));
        using var dir = new TempFolder();
        string path = dir.PathOf("out.jsonl");
        ExampleJsonl.Write(path, [e, e]);
        Assert.Equal([e, e], ExampleJsonl.Read(path));
    }
}
