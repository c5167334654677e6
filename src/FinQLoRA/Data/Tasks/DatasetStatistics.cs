namespace FinQLoRA.Data.Tasks;

/// <summary>Summary of a context/target JSONL file: size, answer distribution and prompt lengths.</summary>
/// <param name="Count">Examples.</param>
/// <param name="DistinctInputs">Distinct normalised input texts.</param>
/// <param name="TargetCounts">Target → count, most frequent first (only the 20 most frequent for free-text tasks).</param>
/// <param name="DistinctTargets">Distinct targets.</param>
/// <param name="LengthUnit">What lengths count ("tokens" with a tokenizer, else "words").</param>
/// <param name="ContextLength">Percentiles of context length.</param>
/// <param name="TargetLength">Percentiles of target length.</param>
public sealed record DatasetStatistics(
    int Count,
    int DistinctInputs,
    IReadOnlyList<KeyValuePair<string, int>> TargetCounts,
    int DistinctTargets,
    string LengthUnit,
    LengthPercentiles ContextLength,
    LengthPercentiles TargetLength);
