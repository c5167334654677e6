using FinQLoRA.Training;

namespace FinQLoRA.Recipes;

/// <summary>Every hash check of a <c>finqlora verify</c>, in order; the folder verifies when <see cref="FirstMismatch"/> is null.</summary>
public sealed record VerifyResult(IReadOnlyList<LineageVerifier.Check> Checks)
{
    public LineageVerifier.Check? FirstMismatch => Checks.FirstOrDefault(c => c.Outcome == LineageVerifier.Outcome.Mismatch);

    /// <summary>Files whose hash matches the record.</summary>
    public int Matched => Checks.Count(c => c.Outcome == LineageVerifier.Outcome.Match);

    /// <summary>Recorded inputs that are no longer present (not a failure: data moves).</summary>
    public int Missing => Checks.Count(c => c.Outcome == LineageVerifier.Outcome.Missing);
}
