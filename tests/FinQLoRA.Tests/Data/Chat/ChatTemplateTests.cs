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
    [InlineData("qwen2.5", ChatTemplateKind.Qwen25)]
    [InlineData("mistral-v3-tekken", ChatTemplateKind.MistralV3Tekken)]
    [InlineData("Gemma3", ChatTemplateKind.Gemma3)]
    [InlineData("phi4-mini", ChatTemplateKind.Phi4Mini)]
    [InlineData("none", ChatTemplateKind.None)]
    public void NamesReadBack(string name, ChatTemplateKind kind) => Assert.Equal(kind, ChatTemplate.Parse(name, "test"));

    [Fact]
    public void EveryKindHasANameTheListShows()
    {
        foreach (var kind in Enum.GetValues<ChatTemplateKind>())
        {
            Assert.Equal(kind, ChatTemplate.Parse(ChatTemplate.Name(kind), "test"));
            Assert.Contains(ChatTemplate.Name(kind), ChatTemplate.Names.Replace(" or ", ", ").Split(", "));
        }
        Assert.Equal(Enum.GetValues<ChatTemplateKind>().Length, ChatTemplate.Names.Replace(" or ", ", ").Split(", ").Length);
        var e = Assert.Throws<UserInputException>(() => ChatTemplate.Parse("gemma4", "chat_template"));
        Assert.Contains("gemma4", e.Message);
        Assert.Contains("mistral-v3", e.Message);
    }

    // The new families by hand, from reading each template (ChatTemplateFixtureTests holds Jinja2's renders of the
    // published ones): the prompt for a [system, user, assistant, user] conversation with the reply opened, the
    // training text of [system, user, assistant] and its trained part, and the token that ends a reply.
    private static readonly ChatTurn[] FollowUp = [.. Exchange, new("user", "And P/E?")];

    public static TheoryData<ChatTemplateKind, string, string, string, string> Families => new()
    {
        {
            ChatTemplateKind.MistralV1,
            "<s> [INST] Be brief.\n\nWhat is EPS? [/INST] Earnings per share.</s> [INST] And P/E? [/INST]",
            "<s> [INST] Be brief.\n\nWhat is EPS? [/INST] Earnings per share.</s>", " Earnings per share.</s>", "</s>"
        },
        {
            // v3: the system prompt goes before the user message that ends the conversation, so training data that
            // ends with a reply renders without it, as the template does
            ChatTemplateKind.MistralV3,
            "<s>[INST] What is EPS?[/INST] Earnings per share.</s>[INST] Be brief.\n\nAnd P/E?[/INST]",
            "<s>[INST] What is EPS?[/INST] Earnings per share.</s>", " Earnings per share.</s>", "</s>"
        },
        {
            ChatTemplateKind.MistralV3Tekken,
            "<s>[INST]What is EPS?[/INST]Earnings per share.</s>[INST]Be brief.\n\nAnd P/E?[/INST]",
            "<s>[INST]What is EPS?[/INST]Earnings per share.</s>", "Earnings per share.</s>", "</s>"
        },
        {
            ChatTemplateKind.Ministral,
            "<s>[INST]What is EPS?[/INST] Earnings per share.</s>[INST]Be brief.\n\nAnd P/E?[/INST]",
            "<s>[INST]What is EPS?[/INST] Earnings per share.</s>", " Earnings per share.</s>", "</s>"
        },
        {
            ChatTemplateKind.Gemma3,
            "<bos><start_of_turn>user\nBe brief.\n\nWhat is EPS?<end_of_turn>\n<start_of_turn>model\nEarnings per share.<end_of_turn>\n<start_of_turn>user\nAnd P/E?<end_of_turn>\n<start_of_turn>model\n",
            "<bos><start_of_turn>user\nBe brief.\n\nWhat is EPS?<end_of_turn>\n<start_of_turn>model\nEarnings per share.<end_of_turn>\n",
            "Earnings per share.<end_of_turn>", "<end_of_turn>"
        },
        {
            ChatTemplateKind.Phi3,
            "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is EPS?<|end|>\n<|assistant|>\nEarnings per share.<|end|>\n<|user|>\nAnd P/E?<|end|>\n<|assistant|>\n",
            "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is EPS?<|end|>\n<|assistant|>\nEarnings per share.<|end|>\n<|endoftext|>",
            "Earnings per share.<|end|>", "<|end|>"
        },
        {
            ChatTemplateKind.Phi4Mini,
            "<|system|>Be brief.<|end|><|user|>What is EPS?<|end|><|assistant|>Earnings per share.<|end|><|user|>And P/E?<|end|><|assistant|>",
            "<|system|>Be brief.<|end|><|user|>What is EPS?<|end|><|assistant|>Earnings per share.<|end|><|endoftext|>",
            "Earnings per share.<|end|>", "<|end|>"
        },
        {
            ChatTemplateKind.Qwen25,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is EPS?<|im_end|>\n<|im_start|>assistant\nEarnings per share.<|im_end|>\n<|im_start|>user\nAnd P/E?<|im_end|>\n<|im_start|>assistant\n",
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is EPS?<|im_end|>\n<|im_start|>assistant\nEarnings per share.<|im_end|>\n",
            "Earnings per share.<|im_end|>", "<|im_end|>"
        },
    };

    [Theory]
    [MemberData(nameof(Families))]
    public void EachFamilyRendersAsItsTemplate(ChatTemplateKind kind, string prompt, string training, string trained, string endOfTurn)
    {
        Assert.Equal(prompt, ChatTemplate.RequestPrompt(kind, FollowUp));
        var segments = ChatTemplate.Render(kind, Exchange);
        Assert.Equal(training, string.Concat(segments.Select(s => s.Text)));
        Assert.Equal([trained], segments.Where(s => s.Trained).Select(s => s.Text));
        Assert.Equal(endOfTurn, ChatTemplate.EndOfTurn(kind));
        // the prompt for the reply, then the reply, is the training text; not for v3's system placement (above)
        if (kind is not (ChatTemplateKind.MistralV3 or ChatTemplateKind.MistralV3Tekken or ChatTemplateKind.Ministral))
            Assert.StartsWith(ChatTemplate.Prompt(kind, Question) + trained, training);
    }

    [Fact]
    public void QwenAddsItsDefaultSystemPromptOnlyWhenThereIsNone()
    {
        Assert.Equal("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            ChatTemplate.Prompt(ChatTemplateKind.Qwen25, [new("user", "Hi")]));
        Assert.Equal("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            ChatTemplate.Prompt(ChatTemplateKind.Qwen2, [new("user", "Hi")]));
        Assert.Equal(ChatTemplate.Prompt(ChatTemplateKind.ChatMl, Question), ChatTemplate.Prompt(ChatTemplateKind.Qwen25, Question));
    }

    [Fact]
    public void TemplatesThatRaiseAreRefused()
    {
        // Gemma 2 has no system role; Gemma 3 takes one first
        var gemma2 = Assert.Throws<UserInputException>(() => ChatTemplate.Prompt(ChatTemplateKind.Gemma2, Question));
        Assert.Contains("no system role", gemma2.Message);
        Assert.Equal("<bos><start_of_turn>user\nWhat is EPS?<end_of_turn>\n<start_of_turn>model\n", ChatTemplate.Prompt(ChatTemplateKind.Gemma2, Question[1..]));
        // Mistral and Gemma want user and assistant alternating from a user turn
        foreach (var kind in new[] { ChatTemplateKind.MistralV3, ChatTemplateKind.Gemma3 })
        {
            var e = Assert.Throws<UserInputException>(() => ChatTemplate.Prompt(kind, [new("user", "a"), new("user", "b")]));
            Assert.Contains("message 2 is 'user'", e.Message);
            Assert.Contains(ChatTemplate.Name(kind), e.Message);
        }
        Assert.Throws<UserInputException>(() => ChatTemplate.Render(ChatTemplateKind.MistralV1, [new("assistant", "a")]));
        // a system message later on: Mistral refuses it, Gemma 3 keeps it where it is (its template writes the role as given)
        Assert.Contains("message 4 is 'system'", Assert.Throws<UserInputException>(() => ChatTemplate.Prompt(ChatTemplateKind.MistralV1, [.. Exchange, new("system", "x")])).Message);
        // Phi-3.5 leaves an empty system message out; Phi-3 writes it
        ChatTurn[] emptySystem = [new("system", ""), new("user", "Hi")];
        Assert.Equal("<|user|>\nHi<|end|>\n<|assistant|>\n", ChatTemplate.Prompt(ChatTemplateKind.Phi35, emptySystem));
        Assert.Equal("<|system|>\n<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n", ChatTemplate.Prompt(ChatTemplateKind.Phi3, emptySystem));
        // roles people may write: the new templates know system, user and assistant
        Assert.Contains("'tool'", Assert.Throws<UserInputException>(() => ChatTemplate.RequestPrompt(ChatTemplateKind.Phi3, [new("tool", "x")])).Message);
    }
}
