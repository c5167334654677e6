namespace FinQLoRA.Data.Tasks;

/// <summary>What a source reader may depend on besides the file: the split (NER builds test prompts the way
/// the reference test set was built) and the seed (option order, template choice).</summary>
internal sealed record SourceContext(TaskDefinition Task, DataSplit Split, int Seed);
