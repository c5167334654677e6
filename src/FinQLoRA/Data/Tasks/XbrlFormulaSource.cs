namespace FinQLoRA.Data.Tasks;

/// <summary>
/// FinLoRA's XBRL-analysis CSVs (instruction, input, output, …). The instruction carries the one-shot example
/// ("Example question: … Example answer: …"), the input the question ending in "Answer:"; the prompt is their
/// concatenation, as FinLoRA builds it. These files hold no XBRL text segment (only doc_path/context_id
/// pointers into SEC filings that are not here), so prompts ask without the filing excerpt.
/// <c>xbrl_tags</c> reads formula_formatted_with_tags_train.csv (answers are formulas over us-gaap tags);
/// <c>xbrl_values</c> reads formula_calculation_train.csv (answers are formulas with the values substituted).
/// </summary>
internal sealed class XbrlFormulaSource(bool expectTags) : ITaskSource
{
    public IEnumerable<Example> Read(string path, SourceContext context)
    {
        var (rows, c) = CsvTable.ReadWithHeader(path, ',', "instruction", "input", "output");
        foreach (var row in rows)
        {
            string output = row.Fields[c[2]].Trim();
            bool hasTags = output.Contains("us-gaap:", StringComparison.OrdinalIgnoreCase);
            if (hasTags != expectTags)
                throw expectTags
                    ? UserInputException.About($"{path}:{row.Line}: answer '{output}' has no us-gaap tag; this looks like formula_calculation data, use {new ConfigField("task")} xbrl_values")
                    : UserInputException.About($"{path}:{row.Line}: answer '{output}' contains us-gaap tags; this looks like formula_formatted_with_tags data, use {new ConfigField("task")} xbrl_tags");
            yield return new Example(row.Fields[c[0]] + row.Fields[c[1]], output);
        }
    }
}
