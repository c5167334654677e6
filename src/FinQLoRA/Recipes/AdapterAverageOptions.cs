using FinQLoRA.Adapters.Averaging;

namespace FinQLoRA.Recipes;

/// <summary>What <c>finqlora adapters average</c> does: the weighted average of <see cref="Inputs"/> written as a new
/// PEFT adapter folder <see cref="OutPath"/>, which must not exist yet or be empty (nothing is ever replaced).</summary>
public sealed record AdapterAverageOptions
{
    public required IReadOnlyList<AveragedAdapterInput> Inputs { get; init; }
    public required string OutPath { get; init; }
    /// <summary>Progress and warnings, one line each (the CLI writes them to stderr).</summary>
    public Action<string>? Progress { get; init; }
}
