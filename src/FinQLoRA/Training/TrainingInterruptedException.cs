namespace FinQLoRA.Training;

/// <summary>The run was asked to stop (Ctrl-C, SIGTERM) and did so after saving <see cref="Checkpoint"/>.</summary>
public sealed class TrainingInterruptedException(int step, string checkpoint)
    : Exception($"interrupted at step {step}; saved {checkpoint}")
{
    public int Step { get; } = step;
    public string Checkpoint { get; } = checkpoint;
}
