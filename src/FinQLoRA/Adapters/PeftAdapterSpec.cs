namespace FinQLoRA.Adapters;

/// <summary>An adapter_config.json as read: the LoRA settings, and the regular expression PEFT matches module paths
/// against when target_modules was given as a string (null when it was a list of names).</summary>
public sealed record PeftAdapterSpec(LoraConfig Config, string? TargetPattern);
