using FinQLoRA.Data.Tasks;
using FinQLoRA.Tests.Support;
using Xunit;

namespace FinQLoRA.Tests.Data;

/// <summary>NER prompt construction on a tiny CoNLL file: the test split reproduces the reference's construction,
/// the train split asks about every entity.</summary>
public sealed class NerSourceTests
{
    // Entities in order: "Acme Corp" (ORG), "John Smith" (PER), "Acme Corp" (ORG), "Paris" (LOC); MISC skipped.
    private const string Conll =
        "-DOCSTART- -X- O O\n\nAcme NNP - I-ORG\nCorp NNP - I-ORG\nhired VBD - O\nJohn NNP - I-PER\nSmith NNP - I-PER\n. . - O\n\n" +
        "Acme NNP - I-ORG\nCorp NNP - I-ORG\nin IN - O\nParis NNP - I-LOC\nuses VBZ - O\nXBRL NNP - I-MISC\n\nNothing NN - O\nhere RB - O\n";

    [Fact]
    public void Test_split_emits_17_prompts_per_distinct_entity_all_about_the_last_entity()
    {
        using var dir = new TempFolder();
        var examples = TaskDataBuilder.Build("ner", [dir.Write("fin.txt", Conll)], DataSplit.Test, [], 5).Examples;
        // Sentence 1: 2 distinct entities -> 34 prompts about "John Smith"; sentence 2: 2 -> 34 about "Paris"; sentence 3: none.
        Assert.Equal(68, examples.Count);
        Assert.All(examples.Take(34), e => Assert.Contains("'John Smith'", e.Context));
        Assert.All(examples.Take(34), e => Assert.Equal("person", e.Target));
        Assert.All(examples.Skip(34), e => Assert.Equal("location", e.Target));
        Assert.StartsWith("Instruction: What is the entity type of 'John Smith' in the input sentence.\nOptions: ", examples[0].Context);
        Assert.StartsWith("Instruction: With the input text as context, identify the entity type of 'John Smith'.", examples[1].Context);
        Assert.StartsWith("Instruction: What is the entity type of 'John Smith'", examples[17].Context);
        Assert.EndsWith("\nInput: Acme Corp hired John Smith .\nAnswer: ", examples[0].Context);
    }

    [Fact]
    public void Options_are_a_seeded_permutation_of_the_three_types()
    {
        using var dir = new TempFolder();
        string path = dir.Write("fin.txt", Conll);
        var a = TaskDataBuilder.Build("ner", [path], DataSplit.Test, [], 5).Examples;
        var b = TaskDataBuilder.Build("ner", [path], DataSplit.Test, [], 5).Examples;
        var c = TaskDataBuilder.Build("ner", [path], DataSplit.Test, [], 6).Examples;
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        var orders = a.Select(e => e.Context.Split("\nOptions: ")[1].Split('\n')[0]).ToList();
        Assert.All(orders, o => Assert.Equal(["location", "organization", "person"], o.Split(", ").Order()));
        Assert.True(orders.Distinct().Count() > 3, "68 draws should show more than 3 of the 6 orders");
    }

    [Fact]
    public void Train_split_asks_once_about_each_distinct_entity_with_its_own_type()
    {
        using var dir = new TempFolder();
        var examples = TaskDataBuilder.Build("ner", [dir.Write("fin.txt", Conll)], DataSplit.Train, [], 5).Examples;
        var asked = examples.Select(e => (Entity: e.Context.Split('\'')[1], e.Target)).ToList();
        Assert.Equal([("Acme Corp", "organization"), ("John Smith", "person"), ("Acme Corp", "organization"), ("Paris", "location")], asked);
    }

    [Fact]
    public void Bad_tag_names_file_and_line()
    {
        using var dir = new TempFolder();
        string path = dir.Write("bad.txt", "Acme NNP - I-ORG\nCorp NNP - X\n");
        Assert.StartsWith($"{path}:2: tag 'X'", Assert.Throws<UserInputException>(() => TaskDataBuilder.Build("ner", [path], DataSplit.Train, [], 1)).Message);
    }
}
