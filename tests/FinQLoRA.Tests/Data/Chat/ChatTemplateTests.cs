using FinQLoRA.Data.Chat;

namespace FinQLoRA.Tests.Data.Chat;

/// <summary>Each template against its official format written out by hand: the inference prompt (history, then the
/// opened assistant turn) and the training render (the same text, the loss on the assistant turns only).</summary>
public sealed class ChatTemplateTests
{
    private static readonly ChatTurn[] Question = [new("system", "Be brief."), new("user", "What is EPS?")];
    private static readonly ChatTurn[] Exchange = [.. Question, new("assistant", "Earnings per share.")];

    [Fact]
    public void Llama3FollowsMetasHeaderFormat()
    {
        Assert.Equal("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
                     "<|start_header_id|>user<|end_header_id|>\n\nWhat is EPS?<|eot_id|>" +
                     "<|start_header_id|>assistant<|end_header_id|>\n\n",
            ChatTemplate.Prompt(ChatTemplateKind.Llama3, Question));
        var segments = ChatTemplate.Render(ChatTemplateKind.Llama3, Exchange);
        Assert.Equal("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
                     "<|start_header_id|>user<|end_header_id|>\n\nWhat is EPS?<|eot_id|>" +
                     "<|start_header_id|>assistant<|end_header_id|>\n\nEarnings per share.<|eot_id|>",
            string.Concat(segments.Select(s => s.Text)));
        Assert.Equal(["Earnings per share.<|eot_id|>"], segments.Where(s => s.Trained).Select(s => s.Text));
        // Meta's template trims each message's content
        Assert.Equal(ChatTemplate.Prompt(ChatTemplateKind.Llama3, Question),
            ChatTemplate.Prompt(ChatTemplateKind.Llama3, [new("system", " Be brief.\n"), new("user", "What is EPS? ")]));
    }

    [Fact]
    public void ChatMlFollowsItsImStartFormat()
    {
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is EPS?<|im_end|>\n<|im_start|>assistant\n",
            ChatTemplate.Prompt(ChatTemplateKind.ChatMl, Question));
        var segments = ChatTemplate.Render(ChatTemplateKind.ChatMl, Exchange);
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is EPS?<|im_end|>\n<|im_start|>assistant\nEarnings per share.<|im_end|>\n",
            string.Concat(segments.Select(s => s.Text)));
        Assert.Equal(["Earnings per share.<|im_end|>"], segments.Where(s => s.Trained).Select(s => s.Text));
    }

    [Fact]
    public void NoneWritesRoleColonLines()
    {
        Assert.Equal("system: Be brief.\nuser: What is EPS?\nassistant: ", ChatTemplate.Prompt(ChatTemplateKind.None, Question));
        var segments = ChatTemplate.Render(ChatTemplateKind.None, Exchange);
        Assert.Equal("system: Be brief.\nuser: What is EPS?\nassistant: Earnings per share.\n", string.Concat(segments.Select(s => s.Text)));
        Assert.Equal(["Earnings per share.\n"], segments.Where(s => s.Trained).Select(s => s.Text));
    }

    [Fact]
    public void ARequestPromptChecksTheRolesTheTemplateKnows()
    {
        Assert.Equal(ChatTemplate.Prompt(ChatTemplateKind.Llama3, Question), ChatTemplate.RequestPrompt(ChatTemplateKind.Llama3, Question));
        Assert.Contains("'robot'", Assert.Throws<UserInputException>(() => ChatTemplate.RequestPrompt(ChatTemplateKind.Llama3, [new("robot", "x")])).Message);
        Assert.Equal("<|im_start|>robot\nx<|im_end|>\n<|im_start|>assistant\n", ChatTemplate.RequestPrompt(ChatTemplateKind.ChatMl, [new("robot", "x")]));
    }

    [Theory]
    [InlineData("llama3", ChatTemplateKind.Llama3)]
    [InlineData("Llama-3", ChatTemplateKind.Llama3)]
    [InlineData("chatml", ChatTemplateKind.ChatMl)]
    [InlineData("none", ChatTemplateKind.None)]
    public void NamesReadBack(string name, ChatTemplateKind kind)
    {
        Assert.Equal(kind, ChatTemplate.Parse(name, "test"));
        Assert.Equal(kind, ChatTemplate.Parse(ChatTemplate.Name(kind), "test"));
    }
}
