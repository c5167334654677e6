namespace FinQLoRA.Data.Tasks;

/// <summary>A file already in FinLoRA's <c>{"context", "target"}</c> JSONL format (extra fields such as
/// FinanceBench's pages/url are ignored): examples pass through unchanged. Every task accepts such files;
/// for nwgi, formula, financebench, finer and fnxl they are the only source available.</summary>
internal sealed class FinLoraJsonlSource : ITaskSource
{
    public IEnumerable<Example> Read(string path, SourceContext context)
    {
        SourceFiles.ReadBytes(path); // existence check with the usual message
        return ExampleJsonl.Read(path);
    }
}
