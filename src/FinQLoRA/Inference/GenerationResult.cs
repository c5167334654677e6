namespace FinQLoRA.Inference;

/// <summary>One prompt's generation: the ids fed in, the ids produced (without the stop token) and their text as it
/// reads after the prompt (decode(prompt) + <see cref="Text"/> = decode(prompt + output), cut at a stop string).</summary>
public sealed record GenerationResult(int[] PromptIds, int[] OutputIds, string Text, FinishReason FinishReason);
