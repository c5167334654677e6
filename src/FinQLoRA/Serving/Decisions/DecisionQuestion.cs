namespace FinQLoRA.Serving.Decisions;

/// <summary>
/// One typed question of a decision request (OpenAI's Decisions API): a predicate (is the statement true?), a choice
/// among values, or a score on ordered levels. Every kind is answered the same way: each of its <see cref="Options"/>
/// is scored by the log-likelihood of its label after the question's prompt, and the likelihoods are normalised
/// over the options.
/// </summary>
public abstract record DecisionQuestion(string Instructions, string? Name)
{
    /// <summary>The labels whose likelihoods are compared, in the order the answer reports them.</summary>
    public abstract IReadOnlyList<string> Options { get; }

    /// <summary>What follows the input in the prompt (<see cref="DecisionPrompt"/>): the instructions, then the
    /// options one per line with their descriptions, then the request to answer with one of them.</summary>
    internal abstract string Block();

    internal static string Lines(string instructions, string heading, IEnumerable<(string Label, string? Description)> options) =>
        $"Question: {instructions}\n{heading}\n"
        + string.Concat(options.Select(o => o.Description is { Length: > 0 } d ? $"- {o.Label}: {d}\n" : $"- {o.Label}\n"))
        + "Answer with exactly one of the options.";
}

/// <summary>Whether a condition holds: a choice between <c>true</c> and <c>false</c>; its answer is P(true).</summary>
public sealed record PredicateQuestion(string Instructions, string? Name = null) : DecisionQuestion(Instructions, Name)
{
    public static IReadOnlyList<string> Labels { get; } = ["true", "false"];
    public override IReadOnlyList<string> Options => Labels;
    internal override string Block() => Lines(Instructions, "Options:", Labels.Select(l => (l, (string?)null)));
}

/// <summary>One value of a <see cref="ChoiceQuestion"/> and, optionally, when it applies.</summary>
public sealed record DecisionOption(DecisionValue Value, string? Description = null);

/// <summary>One value out of several (2 to 255, distinct).</summary>
public sealed record ChoiceQuestion(string Instructions, IReadOnlyList<DecisionOption> Choices, string? Name = null) : DecisionQuestion(Instructions, Name)
{
    public override IReadOnlyList<string> Options => Choices.Select(c => c.Value.Label).ToList();
    internal override string Block() => Lines(Instructions, "Options:", Choices.Select(c => (c.Value.Label, c.Description)));
}

/// <summary>One level of a <see cref="ScoreQuestion"/>'s rubric and, optionally, what it means.</summary>
public sealed record DecisionLevel(string Label, string? Description = null);

/// <summary>A rating on ordered levels, lowest first; level i has the value i, and the score is the expected value.</summary>
public sealed record ScoreQuestion(string Instructions, IReadOnlyList<DecisionLevel> Levels, string? Name = null) : DecisionQuestion(Instructions, Name)
{
    public override IReadOnlyList<string> Options => Levels.Select(l => l.Label).ToList();
    internal override string Block() => Lines(Instructions, "Levels, lowest first:", Levels.Select(l => (l.Label, l.Description)));
}
