using System.Text.Json.Serialization;

namespace FinQLoRA.Evaluation;

/// <summary>
/// One evaluated (model, adapter, task) combination as stored in a run directory's <c>results.json</c>
/// (a JSON array of these, or a single object). Fractions in [0, 1]; null where a field does not apply.
/// </summary>
/// <param name="Task">Task name.</param>
/// <param name="Model">Base model name, e.g. "Llama-3.1-8B".</param>
/// <param name="QuantizationBits">Bits of the frozen base weights (4, 8) or null for 16-bit.</param>
/// <param name="Rank">LoRA rank, null for the base model.</param>
/// <param name="FineTuned">True when an adapter was applied.</param>
/// <param name="Accuracy">Task accuracy.</param>
/// <param name="WeightedF1">Weighted F1, null for free-text tasks.</param>
/// <param name="N">Examples evaluated.</param>
/// <param name="BatchSize">Generation batch size.</param>
/// <param name="SecondsPerExample">Wall-clock generation seconds per example.</param>
/// <param name="PeakMemoryBytes">Peak accelerator (or process) memory during evaluation.</param>
/// <param name="DeviceHours">Accelerator hours spent fine-tuning this adapter (0 for base).</param>
/// <param name="AdapterBytes">Size of the adapter files, 0 for base.</param>
public sealed record RunResult(
    [property: JsonPropertyName("task")] string Task,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("quantization_bits")] int? QuantizationBits,
    [property: JsonPropertyName("rank")] int? Rank,
    [property: JsonPropertyName("fine_tuned")] bool FineTuned,
    [property: JsonPropertyName("accuracy")] double Accuracy,
    [property: JsonPropertyName("weighted_f1")] double? WeightedF1,
    [property: JsonPropertyName("n")] int N,
    [property: JsonPropertyName("batch_size")] int BatchSize,
    [property: JsonPropertyName("seconds_per_example")] double SecondsPerExample,
    [property: JsonPropertyName("peak_memory_bytes")] long PeakMemoryBytes,
    [property: JsonPropertyName("device_hours")] double DeviceHours,
    [property: JsonPropertyName("adapter_bytes")] long AdapterBytes)
{
    /// <summary>Row label in reports: "model q4 r8", "model q4 base", "model bf16 r16".</summary>
    [JsonIgnore]
    public string Configuration =>
        $"{Model} {(QuantizationBits is int q ? $"q{q}" : "16-bit")} {(FineTuned ? $"r{Rank?.ToString() ?? "?"}" : "base")}";
}
