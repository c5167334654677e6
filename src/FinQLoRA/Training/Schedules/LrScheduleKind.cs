namespace FinQLoRA.Training.Schedules;

/// <summary>What follows the linear warm-up: HF transformers' cosine, linear or constant schedule.</summary>
public enum LrScheduleKind
{
    Cosine,
    Linear,
    Constant,
}
