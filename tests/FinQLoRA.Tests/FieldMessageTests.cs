using FinQLoRA.Cli;

namespace FinQLoRA.Tests;

/// <summary>Library errors name config fields; the CLI renders each as its flag (FlagNames), in one place.</summary>
public sealed class FieldMessageTests
{
    [Fact]
    public void TheLibraryMessageNamesTheFieldAndTheCliNamesTheFlag()
    {
        var e = UserInputException.About($"{new ConfigField("max_new_tokens")} must be at least 1 (got {0}); see {new ConfigField("top_k")}");
        Assert.Equal("max_new_tokens must be at least 1 (got 0); see top_k", e.Message);
        Assert.Equal(["max_new_tokens", "top_k"], e.Fields);
        Assert.Equal("--max-new-tokens must be at least 1 (got 0); see --top-k", FlagNames.Render(e));
    }

    [Fact]
    public void ErrorReportPrintsTheFlags()
    {
        var stderr = new StringWriter();
        int code = ErrorReport.Write(UserInputException.About($"{new ConfigField("bits")} 3 is not one of 4, 8, 16"), verbose: false, stderr);
        Assert.Equal(2, code);
        Assert.Equal("error: --bits 3 is not one of 4, 8, 16", stderr.ToString().TrimEnd());
    }

    [Fact]
    public void PlainMessagesRenderAsTheyAre()
    {
        var e = new UserInputException("a.jsonl:3: not valid JSON");
        Assert.Empty(e.Fields);
        Assert.Equal("a.jsonl:3: not valid JSON", FlagNames.Render(e));
    }

    [Fact]
    public void ControlCharactersInAFieldMessageAreEscapedBothWays()
    {
        string value = "a\nb";
        var e = UserInputException.About($"{new ConfigField("model")} {value}: not found");
        Assert.Equal("model a\\u000ab: not found", e.Message);
        Assert.Equal("--model a\\u000ab: not found", FlagNames.Render(e));
    }

    [Theory]
    [InlineData("bits", "--bits")]
    [InlineData("max_seq_len", "--max-seq-len")]
    [InlineData("pipeline_stages", "--pipeline-stages")]
    public void AFieldIsItsKebabCaseFlag(string field, string flag) => Assert.Equal(flag, FlagNames.For(field));
}
