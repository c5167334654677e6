using FinQLoRA.Serving.Decisions;

namespace FinQLoRA.Tests.Serving.Decisions;

/// <summary>Answers from label log-likelihoods: a softmax over the options, P(true) for a predicate, the most likely
/// value for a choice, the expected level index for a score, confidence 1 − H/ln n.</summary>
public sealed class DecisionAnswerTests
{
    [Fact]
    public void ProbabilitiesAreTheSoftmaxOfTheLogLikelihoods()
    {
        var predicate = (PredicateAnswer)DecisionAnswer.From(new PredicateQuestion("x", "n"), [Math.Log(3), Math.Log(1)]);
        Assert.Equal(0.75, predicate.Probability, 12);
        Assert.Equal("n", predicate.Name);

        var choice = (ChoiceAnswer)DecisionAnswer.From(new ChoiceQuestion("x", [new(DecisionValue.Of("a")), new(DecisionValue.Of(true)), new(DecisionValue.Of("c"))]), [-1000.0, -1000 + Math.Log(2), -1000]);
        Assert.Equal(DecisionValue.Of(true), choice.Choice);
        Assert.Equal([0.25, 0.5, 0.25], choice.Probabilities.Select(p => Math.Round(p.Probability, 12)));
        double h = -(0.25 * Math.Log(0.25) * 2 + 0.5 * Math.Log(0.5));
        Assert.Equal(1 - h / Math.Log(3), choice.Confidence, 12);

        var score = (ScoreAnswer)DecisionAnswer.From(new ScoreQuestion("x", [new("lo"), new("mid"), new("hi")]), [0.0, 0, Math.Log(2)]);
        Assert.Equal(0 * 0.25 + 1 * 0.25 + 2 * 0.5, score.Score, 12);
        Assert.Equal([0, 1, 2], score.Probabilities.Select(p => p.Value));
    }

    [Fact]
    public void ConfidenceIsZeroWhenUniformAndOneWhenCertain()
    {
        var q = new ChoiceQuestion("x", [new(DecisionValue.Of("a")), new(DecisionValue.Of("b"))]);
        Assert.Equal(0, ((ChoiceAnswer)DecisionAnswer.From(q, [-2.0, -2.0])).Confidence, 12);
        Assert.Equal(1, ((ChoiceAnswer)DecisionAnswer.From(q, [0.0, -1e4])).Confidence, 9);
        Assert.Equal(DecisionValue.Of("a"), ((ChoiceAnswer)DecisionAnswer.From(q, [-2.0, -2.0])).Choice); // a tie goes to the first, as eval's argmax
    }
}
