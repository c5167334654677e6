namespace FinQLoRA.Inference;

/// <summary>One prompt's generation: the ids fed in, the ids produced (without the stop token) and their text.</summary>
public sealed record GenerationResult(int[] PromptIds, int[] OutputIds, string Text, string FinishReason);
