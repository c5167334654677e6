using FinQLoRA.Training;

namespace FinQLoRA.Debugging;

/// <summary>What <see cref="GradientDump"/> reads and writes.</summary>
public sealed record GradientDumpOptions
{
    /// <summary>The run's settings as <c>train</c> takes them: model, data (one JSONL or Parquet file), precision, device,
    /// LoRA shape, max_seq_len, batch_size (the first B examples) and seed (the adapter's init). Dropout is not read:
    /// the dump is one deterministic step, dropout 0.</summary>
    public required TrainConfig Config { get; init; }
    /// <summary>A PEFT adapter folder to start from (its own rank, alpha, targets and DoRA; the LoRA settings of
    /// <see cref="Config"/> are then not used); null starts from a fresh adapter seeded as training seeds it.</summary>
    public string? Adapter { get; init; }
    public required string OutPath { get; init; }
    public bool Overwrite { get; init; }
}
