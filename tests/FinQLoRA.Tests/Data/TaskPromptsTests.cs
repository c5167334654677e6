using FinQLoRA.Data.Tasks;
using FinQLoRA.Tests.Support;
using Xunit;

namespace FinQLoRA.Tests.Data;

/// <summary>Each task's prompt and labels are written once: the source readers build their prompts with the task's
/// <see cref="TaskDefinition.PromptFor"/> (a task given another prompt gets it from its reader too) and answer
/// with the task's labels.</summary>
public sealed class TaskPromptsTests
{
    public static TheoryData<string, string, string, string[]> Sources => new()
    {
        { "fpb", "fpb.txt", "Fine .@neutral\n", ["<Fine .|>"] },
        { "fiqa", "task1_headline_ABSA_train.json", """{"1": {"sentence": "A", "info": [{"sentiment_score": 0.5}]}}""", ["<A|news>"] },
        { "tfns", "sent_train.csv", "text,label\nStocks up,2\n", ["<Stocks up|>"] },
        { "xbrl_term", "terms.csv", "Term,Explanation\nAssets,What an entity owns.\n", ["<Assets|>"] },
        {
            "headline", "gold.tsv",
            "Dates\tURL\tNews\tPrice Direction Up\tPrice Direction Constant\tPrice Direction Down\tAsset Comparision\tPast Information\tFuture Information\tPrice Sentiment\n" +
            "1-1-2020\thttp://x\tGold rises\t1\t0\t0\t0\t1\t0\tpositive\n",
            [.. HeadlineQuestions.All.Select(q => $"<Gold rises|{q}>")]
        },
    };

    [Theory]
    [MemberData(nameof(Sources))]
    public void SourcesPromptWithTheTasksPrompt(string name, string file, string content, string[] expected)
    {
        using var dir = new TempFolder();
        string path = dir.Write(file, content);
        var task = TaskRegistry.Get(name);
        var marked = task with { Prompt = (input, subject) => $"<{input}|{subject}>" };
        var examples = task.Source!.Read(path, new SourceContext(marked, DataSplit.Train, 1)).ToList();
        Assert.Equal(expected, examples.Select(e => e.Context));
        if (task.Labels is { } labels) Assert.All(examples, e => Assert.Contains(e.Target, labels));
    }

    [Fact]
    public void TheHeadlineInstructionOffersTheTasksLabels()
    {
        var task = TaskRegistry.Get("headline");
        Assert.Equal(["Yes", "No"], task.Labels);
        Assert.Equal("Instruction: Does the news headline talk about price? Please choose an answer from {Yes/No}.\nInput: Gold rises\nAnswer: ",
            task.PromptFor("Gold rises", HeadlineQuestions.All[0]));
    }
}
