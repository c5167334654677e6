namespace FinQLoRA.Training;

/// <summary>One optimizer step, over all ranks.</summary>
/// <param name="Loss">mean cross-entropy over the step's target tokens (differentially private steps: the mean over the
/// step's examples of each example's mean token loss)</param>
/// <param name="Tokens">tokens trained on</param>
/// <param name="StopRequested">some rank was asked to stop (agreed in the same all-reduce, so every rank stops after the same step)</param>
/// <param name="GradNorm">the gradient norm before clipping; NaN without clipping</param>
public sealed record StepResult(double Loss, long Tokens, bool StopRequested, double GradNorm)
{
    /// <summary>Differentially private steps: the units (examples, or customers with user-level privacy) in the step, all ranks.</summary>
    public long Units { get; init; }

    /// <summary>Differentially private steps: the share of <see cref="Units"/> whose gradient norm exceeded the clipping norm C.</summary>
    public double ClippedFraction { get; init; }
}
