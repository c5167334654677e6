namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// 0/1 Adam's scalars, named after DeepSpeed's per-parameter state (<c>step</c>, <c>var_interval</c>,
/// <c>var_counter</c>, <c>local_step_interval</c>, <c>local_step_counter</c>, <c>lrs</c>) and its optimizer-wide flags
/// (<c>initialize</c>, <c>freeze_key</c>, <c>reinitial_error_buffer</c>).
/// </summary>
public sealed record ZeroOneAdamScalarState(
    long Step,
    long VarInterval,
    long VarCounter,
    long LocalStepInterval,
    long LocalStepCounter,
    double Lrs,
    bool Initialized,
    bool Frozen,
    bool ErrorBuffersReset) : OptimizerScalarState;
