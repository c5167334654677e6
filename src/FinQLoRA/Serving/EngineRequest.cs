namespace FinQLoRA.Serving;

/// <summary>One sequence to generate: its prompt ids, the adapter (null = the base) and how to decode. Cancelling
/// <see cref="Cancellation"/> (a client that went away) takes the row out of the batch at the next step.</summary>
public sealed record EngineRequest(int[] PromptIds, string? Adapter, SamplingParams Sampling, CancellationToken Cancellation = default);
