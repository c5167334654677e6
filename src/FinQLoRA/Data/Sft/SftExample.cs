namespace FinQLoRA.Data.Sft;

/// <summary>One prompt/target pair, the financial tasks' JSONL format: <c>{"context": "Instruction: …\nAnswer: ", "target": "positive"}</c>.</summary>
public sealed record SftExample(string Context, string Target);
