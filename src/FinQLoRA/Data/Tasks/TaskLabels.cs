namespace FinQLoRA.Data.Tasks;

/// <summary>
/// The answer sets the tasks offer in their prompts, each written once: <see cref="TaskRegistry"/> gives them to its
/// tasks, and the source readers that derive a label (FiQA's score thresholds, headline's flags, TFNS's codes) name
/// it from here. Wording and order follow FinLoRA's test files (shared/data/finlora-test).
/// </summary>
public static class TaskLabels
{
    public const string Negative = "negative", Neutral = "neutral", Positive = "positive";
    public const string Yes = "Yes", No = "No";

    /// <summary>fpb, fiqa, tfns: "{negative/neutral/positive}".</summary>
    public static IReadOnlyList<string> Sentiment { get; } = [Negative, Neutral, Positive];

    /// <summary>nwgi: seven grades from strong negative to strong positive.</summary>
    public static IReadOnlyList<string> Nwgi { get; } =
        ["strong negative", "moderately negative", "mildly negative", Neutral, "mildly positive", "moderately positive", "strong positive"];

    /// <summary>headline: "{Yes/No}".</summary>
    public static IReadOnlyList<string> YesNo { get; } = [Yes, No];

    /// <summary>ner: the entity types offered (in a shuffled order per prompt).</summary>
    public static IReadOnlyList<string> EntityTypes { get; } = ["location", "organization", "person"];
}
