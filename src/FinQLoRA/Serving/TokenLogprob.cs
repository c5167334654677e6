namespace FinQLoRA.Serving;

/// <summary>A token with its log probability under the model (log-softmax of the raw logits, as vLLM reports).</summary>
public sealed record TokenLogprob(int Id, string Text, float Logprob);
