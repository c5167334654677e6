namespace FinQLoRA.Inference;

/// <summary>One prompt and the adapter to answer it with (null = the base model).</summary>
public sealed record GenerationRequest(int[] PromptIds, string? Adapter);
