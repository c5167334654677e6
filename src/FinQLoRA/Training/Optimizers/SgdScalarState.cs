namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// SGD's scalars: the number of steps taken (0 means the momentum buffers are still PyTorch's <c>None</c>, so the next
/// step starts them from the gradient) and the momentum the buffers were built with, so that a resume with another
/// momentum is refused instead of mixing two runs.
/// </summary>
public sealed record SgdScalarState(long Step, double Momentum) : OptimizerScalarState;
