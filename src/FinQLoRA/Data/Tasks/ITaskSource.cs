namespace FinQLoRA.Data.Tasks;

/// <summary>Reads one raw source file of a task (CSV, TSV, CoNLL, JSON…) into prompt/answer examples.
/// Malformed input throws <see cref="UserInputException"/> naming the file and line.</summary>
internal interface ITaskSource
{
    IEnumerable<Example> Read(string path, SourceContext context);
}
