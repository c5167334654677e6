using FinQLoRA.Options;

namespace FinQLoRA.Training.Optimizers;

/// <summary>The adapter optimizers a run can use (the train config's <c>optimizer</c>).</summary>
public enum OptimizerKind
{
    /// <summary>Decoupled-weight-decay Adam (<see cref="AdamWOptimizer"/>).</summary>
    AdamW,
    /// <summary>0/1 Adam with 1-bit compressed communication (<see cref="ZeroOneAdamOptimizer"/>).</summary>
    ZeroOneAdam,
    /// <summary>Stochastic gradient descent with optional momentum (<see cref="SgdOptimizer"/>).</summary>
    Sgd,
}

/// <summary>The names the train config and run records use for <see cref="OptimizerKind"/>.</summary>
public static class OptimizerKinds
{
    public static NamedValues<OptimizerKind> Spellings { get; } = new((OptimizerKind.AdamW, ["adamw"]), (OptimizerKind.Sgd, ["sgd"]), (OptimizerKind.ZeroOneAdam, ["zero-one-adam"]));
}
