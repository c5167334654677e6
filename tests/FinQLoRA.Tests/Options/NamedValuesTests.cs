using FinQLoRA.Options;

namespace FinQLoRA.Tests.Options;

public sealed class NamedValuesTests
{
    public enum Color { Red, Green, Blue }

    private static readonly NamedValues<Color> Colors = new((Color.Red, ["red", "r"]), (Color.Green, ["green"]), (Color.Blue, ["blue"]));

    [Theory]
    [InlineData("red", Color.Red)]
    [InlineData(" R ", Color.Red)]
    [InlineData("GREEN", Color.Green)]
    public void ParsesEverySpellingIgnoringCaseAndBlanks(string text, Color expected) => Assert.Equal(expected, Colors.Parse(text, "color"));

    [Fact]
    public void TheFirstSpellingIsTheName()
    {
        Assert.Equal("red", Colors.Name(Color.Red));
        Assert.Equal(["red", "green", "blue"], Colors.Names);
        Assert.Equal("red, green or blue", Colors.Expected);
    }

    [Fact]
    public void AnUnknownSpellingNamesTheFieldAndTheChoices()
    {
        var e = Assert.Throws<UserInputException>(() => Colors.Parse("mauve", "color"));
        Assert.Equal("color 'mauve' is not one of red, green, blue", e.Message);
    }
}
