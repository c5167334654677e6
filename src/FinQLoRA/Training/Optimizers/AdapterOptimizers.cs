using TorchSharp.Modules;

namespace FinQLoRA.Training.Optimizers;

/// <summary>The optimizer a train config names, over the adapter parameters.</summary>
public static class AdapterOptimizers
{
    /// <param name="communication">0/1 Adam exchanges its compressed momentum through it; AdamW and SGD leave gradient averaging to the step</param>
    public static IAdapterOptimizer Create(TrainConfig c, List<(string Name, Parameter P)> parameters, IOptimizerCommunication communication) =>
        c.Optimizer switch
        {
            OptimizerKind.ZeroOneAdam => new ZeroOneAdamOptimizer(parameters, communication, new ZeroOneAdamOptions(WeightDecay: c.WeightDecay,
                VarFreezeStep: c.VarFreezeStep, VarUpdateScaler: c.VarUpdateScaler, LocalStepScaler: c.LocalStepScaler, LocalStepClipper: c.LocalStepClipper)),
            OptimizerKind.Sgd => new SgdOptimizer(parameters, new SgdOptions(Momentum: c.Momentum, WeightDecay: c.WeightDecay)),
            _ => new AdamWOptimizer(parameters, new AdamWOptions(WeightDecay: c.WeightDecay)),
        };
}
