namespace FinQLoRA.Data.Tasks;

/// <summary>
/// Everything the rest of the system needs to know about one financial task: how to read its sources,
/// how to phrase a prompt, which answers are valid, how long an answer may be and how it is scored.
/// </summary>
/// <param name="Name">Registry key, e.g. "fpb".</param>
/// <param name="Description">One line for help text and reports.</param>
/// <param name="Sources">Which files the task reads and in what format (help text).</param>
/// <param name="Labels">The answer set offered in the prompt, or null for generative tasks.</param>
/// <param name="MaxNewTokens">Generation budget for one answer.</param>
/// <param name="Metric">How outputs are scored.</param>
/// <param name="Prompt">The prompt for one raw input (for eval and the demo).</param>
public sealed record TaskDefinition(
    string Name,
    string Description,
    string Sources,
    IReadOnlyList<string>? Labels,
    int MaxNewTokens,
    MetricKind Metric,
    PromptFormatter Prompt)
{
    /// <summary>Raw source reader for non-JSONL files; null when the task only has FinLoRA JSONL sources.</summary>
    internal ITaskSource? Source { get; init; }

    /// <summary>Raw label code → label word (TFNS's 0/1/2).</summary>
    public IReadOnlyDictionary<string, string>? SourceLabels { get; init; }

    /// <summary>
    /// For scoring: every surface form that counts as an answer (matched case-insensitively in the output)
    /// and the class it scores as; targets are mapped the same way. Null: each label scores as itself.
    /// nwgi_3 uses it to fold the seven NWGI labels into negative/neutral/positive.
    /// </summary>
    public IReadOnlyDictionary<string, string>? ScoreLabels { get; init; }

    /// <summary>
    /// For tasks without a reference test file (headline, xbrl_tags, xbrl_values): the fraction of inputs
    /// that <see cref="DataSplit.Test"/> keeps, chosen by a seeded hash of the input text (see
    /// <see cref="TaskSplitter"/>); <see cref="DataSplit.Train"/> keeps the rest. Null: the split does not
    /// partition (the sources themselves are a train or test split).
    /// </summary>
    public double? HeldOutFraction { get; init; }

    public bool IsClassification => Metric == MetricKind.Classification;

    /// <summary>The prompt for <paramref name="input"/>; <paramref name="subject"/> as documented on
    /// <see cref="PromptFormatter"/>.</summary>
    public string PromptFor(string input, string? subject = null) => Prompt(input, subject);

    /// <summary>Surface form → scored class, as used by the scorer (identity over <see cref="Labels"/> unless
    /// <see cref="ScoreLabels"/> is set).</summary>
    public IReadOnlyDictionary<string, string> ScoringLabelMap() =>
        ScoreLabels ?? (Labels ?? []).ToDictionary(l => l, l => l, StringComparer.OrdinalIgnoreCase);
}
