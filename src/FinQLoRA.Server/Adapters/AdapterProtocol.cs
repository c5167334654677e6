namespace FinQLoRA.Server.Adapters;

// vLLM's runtime adapter endpoints, field for field as vLLM names them. Both answer 200 with a plain-text line.

/// <summary><c>POST /v1/load_lora_adapter</c>: a PEFT adapter folder (relative to the adapter root, or absolute inside
/// it) served under lora_name.</summary>
internal sealed record LoadLoraAdapterRequest(string? LoraName, string? LoraPath);

/// <summary><c>POST /v1/unload_lora_adapter</c>.</summary>
internal sealed record UnloadLoraAdapterRequest(string? LoraName);
