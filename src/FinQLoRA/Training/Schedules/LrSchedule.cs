namespace FinQLoRA.Training.Schedules;

/// <summary>
/// Learning rate = base lr × λ(step), with λ as HF transformers' <c>optimization.py</c> computes it and PyTorch's
/// <c>LambdaLR</c> applies it: step k (0-based, the number of optimizer steps already taken) uses λ(k), so the first
/// optimizer step of a warm-up runs at lr 0, exactly as the HF Trainer does.
/// <code>
/// warm-up (k &lt; W):  λ = k / max(1, W)
/// then, p = (k − W) / max(1, T − W):
///   cosine:   λ = max(0, f·(1 − r) + r),  f = ½(1 + cos(π · 2·0.5 · p))   (r = min lr ratio; r = 0 is
///                                        get_cosine_schedule_with_warmup, r > 0 get_cosine_with_min_lr_schedule_with_warmup)
///   linear:   λ = max(0, (T − k) / max(1, T − W))                     (get_linear_schedule_with_warmup)
///   constant: λ = 1                                                   (get_constant_schedule_with_warmup)
/// </code>
/// </summary>
public sealed class LrSchedule
{
    /// <summary>Schedule names accepted by <see cref="Parse"/>, as in HF's <c>lr_scheduler_type</c>.</summary>
    public static IReadOnlyList<string> Names => LrScheduleKinds.Spellings.Names;

    public LrSchedule(LrScheduleKind kind, double baseLearningRate, long warmupSteps, long totalSteps, double minLrRatio = 0)
    {
        if (!(baseLearningRate >= 0) || double.IsInfinity(baseLearningRate))
            throw new UserInputException($"learning rate {baseLearningRate} must be a finite number ≥ 0; use e.g. 1e-4");
        if (warmupSteps < 0) throw new UserInputException($"warm-up steps = {warmupSteps} must be ≥ 0");
        if (totalSteps < 1) throw new UserInputException($"total training steps = {totalSteps} must be ≥ 1; check the epochs, batch size and data size");
        if (warmupSteps > totalSteps) throw new UserInputException($"warm-up steps = {warmupSteps} exceed the {totalSteps} total training steps; lower the warm-up");
        if (!(minLrRatio >= 0 && minLrRatio <= 1)) throw new UserInputException($"min lr ratio = {minLrRatio} is outside [0, 1]");
        if (minLrRatio != 0 && kind != LrScheduleKind.Cosine)
            throw new UserInputException($"min lr ratio = {minLrRatio} only applies to the cosine schedule, not {kind.ToString().ToLowerInvariant()}; drop it or use cosine");
        Kind = kind;
        BaseLearningRate = baseLearningRate;
        WarmupSteps = warmupSteps;
        TotalSteps = totalSteps;
        MinLrRatio = minLrRatio;
    }

    public LrScheduleKind Kind { get; }
    public double BaseLearningRate { get; }
    public long WarmupSteps { get; }
    public long TotalSteps { get; }
    public double MinLrRatio { get; }

    /// <summary>Optimizer steps taken so far; the next step uses <see cref="CurrentLearningRate"/>.</summary>
    public long Step { get; private set; }

    /// <summary>The learning rate for the optimizer step about to be taken.</summary>
    public double CurrentLearningRate => LearningRateAt(Step);

    /// <summary>Call after each optimizer step (PyTorch's <c>scheduler.step()</c>).</summary>
    public void Advance() => Step++;

    public LrScheduleState State() => new(Step);

    public void LoadState(LrScheduleState state)
    {
        if (state.Step < 0) throw new UserInputException($"lr schedule state step = {state.Step} is negative; the checkpoint is corrupt");
        Step = state.Step;
    }

    public double LearningRateAt(long step) => BaseLearningRate * Multiplier(step);

    /// <summary>λ(step), the factor applied to the base learning rate.</summary>
    public double Multiplier(long step)
    {
        if (step < WarmupSteps) return (double)step / Math.Max(1, WarmupSteps);
        switch (Kind)
        {
            case LrScheduleKind.Constant:
                return 1.0;
            case LrScheduleKind.Linear:
                return Math.Max(0.0, (double)(TotalSteps - step) / Math.Max(1, TotalSteps - WarmupSteps));
            case LrScheduleKind.Cosine:
                const double numCycles = 0.5;
                double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
                double factor = 0.5 * (1.0 + Math.Cos(Math.PI * numCycles * 2.0 * progress));
                factor = factor * (1 - MinLrRatio) + MinLrRatio;
                return Math.Max(0, factor);
            default:
                throw new InvalidOperationException($"unknown schedule kind {Kind}");
        }
    }

    /// <summary>Parses a schedule name (case-insensitive); anything else is a one-line <see cref="UserInputException"/>.</summary>
    public static LrScheduleKind Parse(string name) => LrScheduleKinds.Spellings.Parse(name, "lr_schedule");
}
