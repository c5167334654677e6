namespace FinQLoRA.Data.Tasks;

/// <summary>
/// The financial tasks, their sources and prompt wording. Wording follows FinLoRA's test files
/// (shared/data/finlora-test), which are the ground truth. Each task's prompt is written once, here: the source
/// readers build their examples with <see cref="TaskDefinition.PromptFor"/> (NER's seventeen templates with shuffled
/// options, and the XBRL CSVs, which carry their prompts, are the exceptions their readers document). Label sets
/// are <see cref="TaskLabels"/>.
/// </summary>
public static class TaskRegistry
{

    private static readonly TaskDefinition[] Tasks =
    [
        new("fpb", "Financial PhraseBank sentence sentiment (3 labels)",
            "FPB Sentences_*Agree.txt ('sentence@label', Latin-1 or UTF-8) or FinLoRA JSONL",
            TaskLabels.Sentiment, 8, MetricKind.Classification, (input, _) => FinLoraPrompt.Sentiment("news", TaskLabels.Sentiment, input))
        { Source = new FinancialPhraseBankSource() },

        new("fiqa", "FiQA 2018 task 1 sentiment of posts ('tweet') and headlines ('news'), score thresholds ±0.1",
            "FiQA task1_post_ABSA_*.json / task1_headline_ABSA_*.json or FinLoRA JSONL",
            TaskLabels.Sentiment, 8, MetricKind.Classification, (input, medium) => FinLoraPrompt.Sentiment(medium ?? "tweet", TaskLabels.Sentiment, input))
        { Source = new FiqaSource() },

        new("tfns", "Twitter Financial News sentiment, labels mapped as FinLoRA's tfns_test (0 negative, 1 neutral, 2 positive)",
            "TFNS CSV (text,label) or FinLoRA JSONL",
            TaskLabels.Sentiment, 8, MetricKind.Classification, (input, _) => FinLoraPrompt.Sentiment("tweet", TaskLabels.Sentiment, input))
        {
            Source = new TfnsSource(),
            // FinLoRA's tfns_test.jsonl labels code 1 (Bullish) "neutral" and 2 (Neutral) "positive"; kept so that
            // training data and scores line up with the published test file. tfns_card has the card's mapping.
            SourceLabels = new Dictionary<string, string> { ["0"] = TaskLabels.Negative, ["1"] = TaskLabels.Neutral, ["2"] = TaskLabels.Positive },
        },

        new("tfns_card", "Twitter Financial News sentiment, labels as the dataset card (0 Bearish negative, 1 Bullish positive, 2 Neutral)",
            "TFNS CSV (text,label) or FinLoRA JSONL",
            TaskLabels.Sentiment, 8, MetricKind.Classification, (input, _) => FinLoraPrompt.Sentiment("tweet", TaskLabels.Sentiment, input))
        {
            Source = new TfnsSource(),
            SourceLabels = new Dictionary<string, string> { ["0"] = TaskLabels.Negative, ["1"] = TaskLabels.Positive, ["2"] = TaskLabels.Neutral },
        },

        new("nwgi", "NWGI news sentiment, 7 labels scored as 7",
            "FinLoRA JSONL (nwgi_test.jsonl)",
            TaskLabels.Nwgi, 8, MetricKind.Classification, (input, _) => FinLoraPrompt.Sentiment("news", TaskLabels.Nwgi, input)),

        new("nwgi_3", "NWGI news sentiment, 7 labels asked, scored as 3 (FinGPT's mapping)",
            "FinLoRA JSONL (nwgi_test.jsonl)",
            TaskLabels.Nwgi, 8, MetricKind.Classification, (input, _) => FinLoraPrompt.Sentiment("news", TaskLabels.Nwgi, input))
        {
            // strong/moderately negative -> negative; mildly negative/neutral/mildly positive -> neutral;
            // moderately/strong positive -> positive. A bare "negative"/"positive" in an output also counts.
            ScoreLabels = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
            {
                ["strong negative"] = "negative", ["moderately negative"] = "negative", ["mildly negative"] = "neutral",
                ["neutral"] = "neutral", ["mildly positive"] = "neutral", ["moderately positive"] = "positive",
                ["strong positive"] = "positive", ["negative"] = "negative", ["positive"] = "positive",
            },
        },

        new("headline", "Gold-news headlines: nine yes/no questions per headline (FinGPT wording)",
            "gold-news TSV (Dates, URL, News, flags, Price Sentiment) or FinLoRA JSONL",
            TaskLabels.YesNo, 4, MetricKind.Classification,
            (input, question) => FinLoraPrompt.Classification(HeadlineQuestions.Instruction(question ?? HeadlineQuestions.All[0], TaskLabels.YesNo), input))
        { Source = new HeadlineSource(), HeldOutFraction = 0.2 },

        new("ner", "Entity type (location/organization/person) of a named entity in an SEC-filing sentence",
            "CoNLL files (token POS chunk tag; FIN5 train, FIN3 test) or FinLoRA JSONL",
            TaskLabels.EntityTypes, 8, MetricKind.Classification,
            (input, entity) => NerSource.Prompt(0, entity ?? throw new UserInputException("ner: the prompt needs the entity (subject) whose type is asked"), TaskLabels.EntityTypes, input))
        { Source = new NerSource() },

        new("xbrl_tags", "XBRL formula construction: question (+ one-shot example) -> formula over us-gaap tags, exact match",
            "formula_formatted_with_tags_train.csv (instruction,input,output) or FinLoRA JSONL",
            null, 64, MetricKind.ExactMatch, (input, _) => XbrlPrompt(input, TagsExample, ""))
        { Source = new XbrlFormulaSource(expectTags: true), HeldOutFraction = 0.1 },

        new("xbrl_values", "XBRL formula calculation: question (+ one-shot example) -> formula with values, numbers compared by value",
            "formula_calculation_train.csv (instruction,input,output) or FinLoRA JSONL",
            null, 32, MetricKind.NumericMatch, (input, _) => XbrlPrompt(input, ValuesExample, " Answer with a formula substituted with values. "))
        { Source = new XbrlFormulaSource(expectTags: false), HeldOutFraction = 0.1 },

        new("xbrl_term", "Explain an XBRL term in one sentence (token F1)",
            "XBRL Terminology.csv (Term,Explanation) or FinLoRA JSONL",
            null, 128, MetricKind.TextSimilarity, (term, _) => $"Explain this XBRL term briefly in one sentence: {term}. Answer:")
        { Source = new XbrlTermSource() },

        new("financebench", "FinanceBench question answering over filing pages (token F1)",
            "FinLoRA JSONL (context holds question and pages)",
            null, 256, MetricKind.TextSimilarity, (input, _) => input),

        new("formula", "Financial formula word problems, numeric answer with 2 decimals",
            "FinLoRA JSONL",
            null, 16, MetricKind.NumericMatch, (input, _) => input),

        new("finer", "FiNER-139 batched: us-gaap tag per highlighted number, comma-separated",
            "FinLoRA batched JSONL (finer_test_batched.jsonl)",
            null, 192, MetricKind.TagList, (input, _) => input),

        new("fnxl", "FNXL batched: us-gaap tag per highlighted entity, comma-separated",
            "FinLoRA batched JSONL (fnxl_test_batched.jsonl)",
            null, 512, MetricKind.TagList, (input, _) => input),
    ];

    private const string XbrlInstructionStart =
        "You are a knowledgeable XBRL assistant. Your task is to analyze the XBRL context and provide an accurate and very concise answer to the question, The example question can help you to learn the answer format. DO NOT output xml, code, explanation or create new question. \n";

    private const string TagsExample =
        "Example question: What is the formula for the Gross Profit Margin of Example Inc, formatted with the relevant US GAAP XBRL tags\nExample answer: us-gaap:ExampleTag / us-gaap:AnotherExampleTag) * 100\n";

    private const string ValuesExample =
        "Example question: Can you provide the formula for Operating Profit Margin from Example Corp for the Fiscal Year ending in FY 2022?\nExample answer: (50000000 / 3590000000) * 100\n";

    private static readonly Dictionary<string, TaskDefinition> ByName = Tasks.ToDictionary(t => t.Name, StringComparer.OrdinalIgnoreCase);

    public static IReadOnlyList<TaskDefinition> All => Tasks;

    public static IEnumerable<string> Names => Tasks.Select(t => t.Name);

    public static TaskDefinition Get(string name) =>
        ByName.TryGetValue(name.Trim(), out var task)
            ? task
            : throw new UserInputException($"unknown task '{name}'; known tasks: {string.Join(", ", Names)}");

    // Same layout as FinLoRA's CSV rows: instruction (with the one-shot example) + "Question: …\nAnswer:".
    private static string XbrlPrompt(string question, string example, string suffix) =>
        $"{XbrlInstructionStart}{example}Question: {question}{suffix}\nAnswer:";
}
