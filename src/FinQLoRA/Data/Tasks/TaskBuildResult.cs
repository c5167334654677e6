namespace FinQLoRA.Data.Tasks;

/// <summary>What <see cref="TaskDataBuilder.Build"/> produced: the examples, and how many were dropped because
/// their input text occurs in an --exclude file.</summary>
public sealed record TaskBuildResult(IReadOnlyList<Example> Examples, int ExcludedCount);
