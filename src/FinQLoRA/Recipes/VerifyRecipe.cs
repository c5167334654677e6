using FinQLoRA.Training;

namespace FinQLoRA.Recipes;

/// <summary><c>finqlora verify DIR</c>: the hashes a run folder (run.json) or an adapter folder (lineage.json)
/// recorded, recomputed (<see cref="LineageVerifier"/>).</summary>
public static class VerifyRecipe
{
    /// <param name="onCheck">told each check as it is made (the CLI prints a line per file)</param>
    public static VerifyResult Run(string dir, Action<LineageVerifier.Check>? onCheck = null)
    {
        var checks = LineageVerifier.Verify(dir);
        foreach (var check in checks) onCheck?.Invoke(check);
        return new VerifyResult(checks);
    }
}
