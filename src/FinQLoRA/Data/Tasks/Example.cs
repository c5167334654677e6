namespace FinQLoRA.Data.Tasks;

/// <summary>One supervised example: the prompt the model sees and the answer it should produce.
/// Stored as one JSONL line <c>{"context": …, "target": …}</c>, the format of FinLoRA's data files.</summary>
public sealed record Example(string Context, string Target);
