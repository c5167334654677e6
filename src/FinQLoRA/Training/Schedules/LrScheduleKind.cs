using FinQLoRA.Options;

namespace FinQLoRA.Training.Schedules;

/// <summary>What follows the linear warm-up: HF transformers' cosine, linear or constant schedule.</summary>
public enum LrScheduleKind
{
    Cosine,
    Linear,
    Constant,
}

/// <summary>The names of <see cref="LrScheduleKind"/>, as HF's <c>lr_scheduler_type</c> and the train config's
/// <c>lr_schedule</c> write them.</summary>
public static class LrScheduleKinds
{
    public static NamedValues<LrScheduleKind> Spellings { get; } = new(
        (LrScheduleKind.Cosine, ["cosine"]), (LrScheduleKind.Linear, ["linear"]), (LrScheduleKind.Constant, ["constant"]));
}
