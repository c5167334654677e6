namespace FinQLoRA.Training;

/// <summary>One optimizer step, over all ranks.</summary>
/// <param name="Loss">mean cross-entropy over the step's target tokens</param>
/// <param name="Tokens">tokens trained on</param>
/// <param name="StopRequested">some rank was asked to stop (agreed in the same all-reduce, so every rank stops after the same step)</param>
/// <param name="GradNorm">the gradient norm before clipping; NaN without clipping</param>
public sealed record StepResult(double Loss, long Tokens, bool StopRequested, double GradNorm);
