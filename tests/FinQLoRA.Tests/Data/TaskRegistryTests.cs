using FinQLoRA.Data.Tasks;
using FinQLoRA.Tests.Support;
using Xunit;

namespace FinQLoRA.Tests.Data;

/// <summary>The registry's contract for eval and the demo: labels, budgets, and prompts for a raw input that
/// equal the reference files' prompts.</summary>
public sealed class TaskRegistryTests
{
    [Fact]
    public void Every_task_is_complete_and_classification_tasks_have_labels()
    {
        Assert.Equal(15, TaskRegistry.All.Count);
        foreach (var t in TaskRegistry.All)
        {
            Assert.True(t.MaxNewTokens > 0, t.Name);
            Assert.Equal(t.IsClassification, t.Labels != null);
            Assert.Same(t, TaskRegistry.Get(t.Name.ToUpperInvariant()));
        }
    }

    [Theory]
    [InlineData("fpb", "L&T has also made a commitment .", null,
        "Instruction: What is the sentiment of this news? Please choose an answer from {negative/neutral/positive}.\nInput: L&T has also made a commitment .\nAnswer: ")]
    [InlineData("fiqa", "$BBRY lost", null,
        "Instruction: What is the sentiment of this tweet? Please choose an answer from {negative/neutral/positive}.\nInput: $BBRY lost\nAnswer: ")]
    [InlineData("nwgi", "Adobe closed up.", null,
        "Instruction: What is the sentiment of this news? Please choose an answer from {strong negative/moderately negative/mildly negative/neutral/mildly positive/moderately positive/strong positive}.\nInput: Adobe closed up.\nAnswer: ")]
    [InlineData("ner", "EVERGREEN SOLAR , INC .", "EVERGREEN SOLAR",
        "Instruction: What is the entity type of 'EVERGREEN SOLAR' in the input sentence.\nOptions: location, organization, person\nInput: EVERGREEN SOLAR , INC .\nAnswer: ")]
    [InlineData("xbrl_term", "Prepaid Taxes", null, "Explain this XBRL term briefly in one sentence: Prepaid Taxes. Answer:")]
    [InlineData("formula", "Use formula X. Answer:", null, "Use formula X. Answer:")]
    public void PromptFor_builds_the_reference_wording(string task, string input, string? subject, string expected) =>
        Assert.Equal(expected, TaskRegistry.Get(task).PromptFor(input, subject));

    [SharedFact]
    public void PromptFor_reproduces_the_first_prompts_of_the_reference_files()
    {
        foreach (string task in new[] { "fpb", "tfns", "nwgi", "xbrl_term" })
        {
            var first = ExampleJsonl.Read(Shared.File($"data/finlora-test/{task}_test.jsonl"))[0];
            string input = task == "xbrl_term" ? first.Context["Explain this XBRL term briefly in one sentence: ".Length..^". Answer:".Length] : FinLoraPrompt.InputText(first.Context);
            Assert.Equal(first.Context, TaskRegistry.Get(task).PromptFor(input));
        }
    }

    [SharedFact]
    public void Xbrl_PromptFor_matches_the_csv_rows()
    {
        var tags = TaskDataBuilder.Build("xbrl_tags", [Shared.File("data/xbrl_extract/formula_formatted_with_tags_train.csv")], DataSplit.Test, [], 1).Examples[0];
        string question = tags.Context.Split("\nQuestion: ")[1][..^"\nAnswer:".Length];
        Assert.Equal(tags.Context, TaskRegistry.Get("xbrl_tags").PromptFor(question));
    }

    [Fact]
    public void Ner_prompt_needs_the_entity() =>
        Assert.Throws<UserInputException>(() => TaskRegistry.Get("ner").PromptFor("A sentence ."));

    [Fact]
    public void Input_text_is_the_part_between_Input_and_Answer()
    {
        Assert.Equal("x\ny", FinLoraPrompt.InputText("Instruction: i\nOptions: a\nInput: x\ny\nAnswer: "));
        Assert.Equal("Explain t. Answer:", FinLoraPrompt.InputText("Explain t. Answer:"));
        Assert.Equal("a b", InputText.Normalize("  A \n\t B "));
    }
}
