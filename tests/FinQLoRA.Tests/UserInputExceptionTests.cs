namespace FinQLoRA.Tests;

public sealed class UserInputExceptionTests
{
    [Fact]
    public void ControlCharactersQuotedFromAFileAreEscaped_SoTheMessageIsOneLine()
    {
        var e = new UserInputException("x.gguf: tensor 'a\nb\r\tc\u0000' appears twice");
        Assert.Equal("x.gguf: tensor 'a\\u000ab\\u000d\\u0009c\\u0000' appears twice", e.Message);
    }

    [Fact]
    public void OrdinaryMessagesAreUnchanged() =>
        Assert.Equal("a.jsonl:3: not valid UTF-8 — é 議", new UserInputException("a.jsonl:3: not valid UTF-8 — é 議").Message);
}
