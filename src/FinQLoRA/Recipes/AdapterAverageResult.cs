using FinQLoRA.Adapters.Averaging;

namespace FinQLoRA.Recipes;

/// <summary>What <c>finqlora adapters average</c> wrote.</summary>
/// <param name="Exact">the average's B·A equals the average of the inputs' B·A (shared frozen A, no DoRA)</param>
/// <param name="Warning">why it is not exact, as printed and recorded in lineage.json; null when exact</param>
public sealed record AdapterAverageResult(string OutPath, int Inputs, int Tensors, long WeightsBytes, bool Exact, string? Warning,
    AdapterCompatibility Compatibility);
