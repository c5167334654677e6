namespace FinQLoRA.Training;

/// <summary>
/// How long a run is: optimizer steps per epoch and in all, and the warm-up it actually uses. A warm-up longer than
/// the run is clamped to the run (what PEFT/TRL users expect from the HF Trainer), with <see cref="WarmupNote"/> saying so.
/// </summary>
public sealed record TrainingPlan(int StepsPerEpoch, int TotalSteps, int WarmupSteps)
{
    /// <summary>One line when the configured warm-up was clamped; null otherwise.</summary>
    public string? WarmupNote { get; init; }

    public static TrainingPlan For(TrainConfig c, int batchesPerEpoch)
    {
        int stepsPerEpoch = Math.Max(1, batchesPerEpoch / c.GradAccum);
        int totalSteps = c.MaxSteps > 0 ? c.MaxSteps : stepsPerEpoch * c.Epochs;
        if (c.WarmupSteps <= totalSteps) return new TrainingPlan(stepsPerEpoch, totalSteps, c.WarmupSteps);
        return new TrainingPlan(stepsPerEpoch, totalSteps, totalSteps)
        {
            WarmupNote = $"note: warmup_steps = {c.WarmupSteps} is longer than the {totalSteps} training steps; warming up over all {totalSteps} steps",
        };
    }
}
