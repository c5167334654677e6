namespace FinQLoRA.Data.Tasks;

/// <summary>
/// Entity-type classification prompts from CoNLL files, in the wording of FinGPT's fingpt-ner-cls set
/// (FinLoRA's ner_test): 17 instruction templates, options "location, organization, person" in varied order.
///
/// How the reference test set was built (reverse-engineered from ner_test.jsonl against FIN3.txt; all 98
/// sentences and 3,502 lines agree): for each sentence with at least one PER/ORG/LOC entity, 17 prompts (one per
/// template, in template order) are emitted once per distinct entity string, but every one of them names the
/// sentence's LAST entity and has its type as the answer; the option order is a fresh random permutation per
/// prompt. <see cref="DataSplit.Test"/> reproduces that construction so a test set built from FIN3 matches the
/// published one (up to option order, whose random stream cannot be recovered). <see cref="DataSplit.Train"/>
/// asks about every distinct entity of a sentence, once each, with a seeded template and option order.
/// </summary>
internal sealed class NerSource : ITaskSource
{
    internal static readonly string[] Templates =
    [
        "What is the entity type of '{0}' in the input sentence.",
        "With the input text as context, identify the entity type of '{0}'.",
        "Using the input sentence as a reference, analyze and specify the entity type of '{0}'.",
        "In the context of the input sentence, examine and categorize the entity type of '{0}'.",
        "Utilize the input text as context to explore and ascertain the entity type of '{0}'.",
        "Leverage the input sentence to evaluate and define the entity type for '{0}'.",
        "Considering the input sentence as context, inspect and classify the entity type of '{0}'.",
        "With the input sentence as a backdrop, scrutinize and determine the entity type of '{0}'.",
        "Interpreting the input sentence as context, specify the entity type for '{0}'.",
        "Assessing the input sentence as context, label the entity type of '{0}'.",
        "In the input sentence, determine the entity type for '{0}'.",
        "Within the input text, identify the entity type of '{0}'.",
        "Analyze the input sentence to find the entity type of '{0}'.",
        "Check the input sentence for the entity type associated with '{0}'.",
        "Explore the input sentence to ascertain the entity type of '{0}'.",
        "Examine the input text to classify the entity type of '{0}'.",
        "Scrutinize the input sentence to define the entity type of '{0}'.",
    ];

    public IEnumerable<Example> Read(string path, SourceContext context)
    {
        var labels = context.Task.Labels!;
        var random = new SeededRandom((ulong)(uint)context.Seed ^ 0x4E45520000000000UL);
        var result = new List<Example>();
        foreach (var sentence in ConllReader.Read(path))
        {
            if (sentence.Entities.Count == 0) continue;
            if (context.Split == DataSplit.Test)
            {
                int distinct = sentence.Entities.Select(e => e.Text).Distinct(StringComparer.Ordinal).Count();
                var last = sentence.Entities[^1];
                for (int r = 0; r < distinct; r++)
                    for (int t = 0; t < Templates.Length; t++)
                        result.Add(new Example(Prompt(t, last.Text, Shuffled(labels, random), sentence.Text), last.Type));
            }
            else
            {
                foreach (var entity in sentence.Entities.DistinctBy(e => (e.Text, e.Type)))
                    result.Add(new Example(Prompt(random.Next(Templates.Length), entity.Text, Shuffled(labels, random), sentence.Text), entity.Type));
            }
        }
        return result;
    }

    internal static string Prompt(int template, string entity, IReadOnlyList<string> options, string sentence) =>
        $"Instruction: {string.Format(Templates[template], entity)}\nOptions: {string.Join(", ", options)}\nInput: {sentence}\nAnswer: ";

    private static List<string> Shuffled(IReadOnlyList<string> labels, SeededRandom random)
    {
        var options = labels.ToList();
        random.Shuffle(options);
        return options;
    }
}
