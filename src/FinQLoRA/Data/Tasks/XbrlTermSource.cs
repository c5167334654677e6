namespace FinQLoRA.Data.Tasks;

/// <summary>
/// "XBRL Terminology.csv" (Term, Explanation) → the task's prompt for the term (FinLoRA's
/// <c>Explain this XBRL term briefly in one sentence: {Term}. Answer:</c>) with the explanation as target.
/// Rows where either cell is empty or an Excel error (<c>#NAME?</c>) carry no definition and are skipped
/// (FinLoRA kept 8 of them as the text "nan").
/// </summary>
internal sealed class XbrlTermSource : ITaskSource
{
    public IEnumerable<Example> Read(string path, SourceContext context)
    {
        var (rows, c) = CsvTable.ReadWithHeader(path, ',', "Term", "Explanation");
        foreach (var row in rows)
        {
            string term = row.Fields[c[0]].Trim(), explanation = row.Fields[c[1]].Trim();
            if (IsMissing(term) || IsMissing(explanation)) continue;
            yield return new Example(context.Task.PromptFor(term), explanation);
        }
    }

    private static bool IsMissing(string cell) => cell.Length == 0 || cell.StartsWith('#') && cell.EndsWith('?');
}
