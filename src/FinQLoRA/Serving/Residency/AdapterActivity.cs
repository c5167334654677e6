namespace FinQLoRA.Serving.Residency;

/// <summary>What vLLM's <c>vllm:lora_requests_info</c> gauge reports: the adapters of the rows running now, those of
/// the requests waiting, and how many adapters fit on the device at once (<c>--max-loras</c>). Names are distinct, in
/// the order the rows hold slots and the requests queue.</summary>
public sealed record AdapterActivity(IReadOnlyList<string> Running, IReadOnlyList<string> Waiting, int MaxLoras);
