namespace FinQLoRA.Training.Schedules;

/// <summary>The checkpointed part of an <see cref="LrSchedule"/>: optimizer steps taken so far (LambdaLR's <c>last_epoch</c>).</summary>
public sealed record LrScheduleState(long Step);
