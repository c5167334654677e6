namespace FinQLoRA.Data.Tasks;

/// <summary>
/// Twitter Financial News Sentiment CSV (<c>text,label</c>, quoted multi-line texts). The numeric label is
/// mapped through <see cref="TaskDefinition.SourceLabels"/>: task <c>tfns</c> uses FinLoRA's mapping so that
/// sent_valid.csv rebuilds tfns_test.jsonl exactly; <c>tfns_card</c> uses the dataset card's.
/// </summary>
internal sealed class TfnsSource : ITaskSource
{
    public IEnumerable<Example> Read(string path, SourceContext context)
    {
        var map = context.Task.SourceLabels ?? throw new InvalidOperationException($"task {context.Task.Name} has no source label map");
        var (rows, cols) = CsvTable.ReadWithHeader(path, ',', "text", "label");
        foreach (var row in rows)
        {
            string code = row.Fields[cols[1]].Trim();
            if (!map.TryGetValue(code, out string? label))
                throw new UserInputException($"{path}:{row.Line}: label '{code}' is not one of {string.Join(", ", map.Keys)} (0 Bearish, 1 Bullish, 2 Neutral)");
            yield return new Example(context.Task.PromptFor(row.Fields[cols[0]]), label);
        }
    }
}
