namespace FinQLoRA.Training.Optimizers;

/// <summary>AdamW's scalars: the number of steps taken (PyTorch keeps one per parameter; they are always equal here).</summary>
public sealed record AdamWScalarState(long Step) : OptimizerScalarState;
