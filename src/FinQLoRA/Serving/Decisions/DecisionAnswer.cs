namespace FinQLoRA.Serving.Decisions;

/// <summary>The answer to one <see cref="DecisionQuestion"/>, in the question's order, with the question's name.</summary>
public abstract record DecisionAnswer(string? Name)
{
    /// <summary>The answer from the options' label log-likelihoods (natural log, in <see cref="DecisionQuestion.Options"/>
    /// order): a softmax over them. Confidence is the peakedness of that distribution, 1 − H(p) / ln n: 0 when every
    /// option is equally likely, 1 when one has all the mass (OpenAI does not publish its formula; this one is stated
    /// in docs/serving.md).</summary>
    public static DecisionAnswer From(DecisionQuestion question, IReadOnlyList<double> logLikelihoods)
    {
        var p = Softmax(logLikelihoods);
        return question switch
        {
            PredicateQuestion q => new PredicateAnswer(q.Name, p[0]),
            ChoiceQuestion q => new ChoiceAnswer(q.Name, q.Choices[ArgMax(p)].Value, Confidence(p),
                q.Choices.Select((c, i) => new ChoiceProbability(c.Value, p[i])).ToList()),
            ScoreQuestion q => new ScoreAnswer(q.Name, p.Select((x, i) => i * x).Sum(), Confidence(p),
                q.Levels.Select((l, i) => new LevelProbability(l.Label, i, p[i])).ToList()),
            _ => throw new ArgumentOutOfRangeException(nameof(question)),
        };
    }

    private static double[] Softmax(IReadOnlyList<double> logits)
    {
        double max = logits.Max();
        var e = logits.Select(x => Math.Exp(x - max)).ToArray();
        double sum = e.Sum();
        return e.Select(x => x / sum).ToArray();
    }

    // The first of equally likely options wins, as ChoiceScorer.Predict picks.
    private static int ArgMax(double[] p) => Array.IndexOf(p, p.Max());

    private static double Confidence(double[] p)
    {
        double entropy = -p.Where(x => x > 0).Sum(x => x * Math.Log(x));
        return Math.Clamp(1 - entropy / Math.Log(p.Length), 0, 1);
    }
}

/// <summary>The probability that the predicate holds.</summary>
public sealed record PredicateAnswer(string? Name, double Probability) : DecisionAnswer(Name);

public sealed record ChoiceProbability(DecisionValue Value, double Probability);

/// <summary>The most likely value, the confidence and every value's probability (in the question's order).</summary>
public sealed record ChoiceAnswer(string? Name, DecisionValue Choice, double Confidence, IReadOnlyList<ChoiceProbability> Probabilities) : DecisionAnswer(Name);

/// <summary>A level's probability; <see cref="Value"/> is its zero-based index.</summary>
public sealed record LevelProbability(string Label, int Value, double Probability);

/// <summary>The expected level index Σ i·p(i), the confidence and every level's probability (lowest first).</summary>
public sealed record ScoreAnswer(string? Name, double Score, double Confidence, IReadOnlyList<LevelProbability> Probabilities) : DecisionAnswer(Name);

/// <summary>The question was not answered: its prompt and longest option do not fit the context
/// (<see cref="EngineOptions.MaxModelLen"/>).</summary>
public sealed record RefusalAnswer(string? Name) : DecisionAnswer(Name);
