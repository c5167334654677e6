namespace FinQLoRA.Data.Tasks;

/// <summary>Gold-news headline TSV (Dates, URL, News, 0/1 flags, Price Sentiment) → nine yes/no prompts per
/// headline; see <see cref="HeadlineQuestions"/> for the wording and how each answer is derived.</summary>
internal sealed class HeadlineSource : ITaskSource
{
    private static readonly string[] Columns =
        ["News", "Price Direction Up", "Price Direction Constant", "Price Direction Down", "Asset Comparision", "Past Information", "Future Information", "Price Sentiment"];

    public IEnumerable<Example> Read(string path, SourceContext context)
    {
        var (rows, c) = CsvTable.ReadWithHeader(path, '\t', Columns);
        var result = new List<Example>();
        foreach (var row in rows)
        {
            bool Flag(int k)
            {
                string v = row.Fields[c[k]].Trim();
                return v switch
                {
                    "1" => true,
                    "0" => false,
                    _ => throw new UserInputException($"{path}:{row.Line}: column '{Columns[k]}' is '{v}', expected 0 or 1"),
                };
            }
            string headline = row.Fields[c[0]].Trim();
            string sentiment = row.Fields[c[7]].Trim().ToLowerInvariant();
            if (sentiment is not (TaskLabels.Positive or TaskLabels.Negative or TaskLabels.Neutral or "none"))
                throw new UserInputException($"{path}:{row.Line}: Price Sentiment is '{sentiment}', expected positive, negative, neutral or none");
            bool price = sentiment != "none", past = Flag(5), future = Flag(6);
            bool[] answers = [price, Flag(1), Flag(2), Flag(3), price && past, price && future, !price && past, !price && future, Flag(4)];
            for (int q = 0; q < answers.Length; q++)
                result.Add(new Example(context.Task.PromptFor(headline, HeadlineQuestions.All[q]), answers[q] ? TaskLabels.Yes : TaskLabels.No));
        }
        return result;
    }
}
