using FinQLoRA.Data.Chat;
using FinQLoRA.Serving.Decisions;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving.Decisions;

/// <summary>The documented renderings of a decision prompt (docs/serving.md), and the property they exist for:
/// every question of a request starts with the same text, so the input is prefilled once.</summary>
public sealed class DecisionPromptTests
{
    private static readonly ChoiceQuestion Sentiment = new("What is the sentiment?", [new(DecisionValue.Of("positive"), "good news"), new(DecisionValue.Of(false))]);
    private static readonly ScoreQuestion Relevance = new("How relevant is it?", [new("low"), new("high", "about banks")]);

    [Fact]
    public void PlainRenderingIsTheInputThenTheQuestionThenTheAnswerCue()
    {
        Assert.Equal("Gold rose.\n\nQuestion: What is the sentiment?\nOptions:\n- positive: good news\n- false\nAnswer with exactly one of the options.\nAnswer: ",
            DecisionPrompt.Context(null, [new ChatTurn("user", "Gold rose.")], Sentiment));
        Assert.Equal("system: Be brief.\nuser: Gold rose.\n\nQuestion: How relevant is it?\nLevels, lowest first:\n- low\n- high: about banks\nAnswer with exactly one of the options.\nAnswer: ",
            DecisionPrompt.Context(null, [new ChatTurn("system", "Be brief."), new ChatTurn("user", "Gold rose.")], Relevance));
        Assert.Equal("Question: Gold is up.\nOptions:\n- true\n- false\nAnswer with exactly one of the options.", new PredicateQuestion("Gold is up.").Block());
    }

    [Fact]
    public void WithATemplateTheQuestionJoinsTheLastUserTurnOrOpensOne()
    {
        using var dir = new TempFolder();
        string tokenizer = dir.Path;
        SeededTokenizer.Write(tokenizer, llama3Chat: true);
        var format = ChatFormat.Detect(FinQLoRA.Loading.ModelLoading.LoadTokenizer(tokenizer), Path.Combine(tokenizer, "tokenizer_config.json"))!;
        string user = DecisionPrompt.Context(format, [new ChatTurn("user", "Gold rose.")], Sentiment);
        Assert.Equal(format.Render([new ChatTurn("user", "Gold rose.\n\n" + Sentiment.Block())]), user);
        string afterAssistant = DecisionPrompt.Context(format, [new ChatTurn("user", "Hi"), new ChatTurn("assistant", "Gold rose.")], Sentiment);
        Assert.Equal(format.Render([new ChatTurn("user", "Hi"), new ChatTurn("assistant", "Gold rose."), new ChatTurn("user", Sentiment.Block())]), afterAssistant);
    }

    [Fact]
    public void EveryQuestionOfARequestStartsWithTheWholeInput()
    {
        ChatTurn[] input = [new("user", "Gold rose 2% on Friday as the dollar fell.")];
        string a = DecisionPrompt.Context(null, input, Sentiment), b = DecisionPrompt.Context(null, input, Relevance);
        int common = a.Zip(b).TakeWhile(p => p.First == p.Second).Count();
        Assert.True(common >= input[0].Content.Length + "\n\nQuestion: ".Length);
    }
}
