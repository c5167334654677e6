using FinQLoRA.Options;

namespace FinQLoRA.Tests.Options;

/// <summary>The one true/false reading (train's YAML and flags, --double-quant).</summary>
public sealed class BoolTextTests
{
    [Theory]
    [InlineData("true", true)]
    [InlineData("Yes", true)]
    [InlineData("1", true)]
    [InlineData(" TRUE ", true)]
    [InlineData("false", false)]
    [InlineData("no", false)]
    [InlineData("0", false)]
    public void AcceptsTheSpellings(string text, bool expected) => Assert.Equal(expected, BoolText.Parse(text, "double_quant"));

    [Theory]
    [InlineData("maybe")]
    [InlineData("")]
    [InlineData("2")]
    public void RefusesAnythingElseNamingTheField(string text)
    {
        var e = Assert.Throws<UserInputException>(() => BoolText.Parse(text, "double_quant"));
        Assert.Equal($"double_quant '{text}' is not true or false", e.Message);
        Assert.Equal(["double_quant"], e.Fields);
    }
}
