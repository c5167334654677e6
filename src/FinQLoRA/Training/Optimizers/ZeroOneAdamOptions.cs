namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// 0/1 Adam hyperparameters with DeepSpeed's <c>ZeroOneAdam</c> defaults (the learning rate, default 1e-3 there, comes
/// per step). <see cref="LocalStepScaler"/> = 32678 is DeepSpeed's literal default (not 32768).
/// </summary>
public sealed record ZeroOneAdamOptions(
    double Beta1 = 0.9,
    double Beta2 = 0.999,
    double Eps = 1e-8,
    double WeightDecay = 0.0,
    long VarFreezeStep = 100000,
    long VarUpdateScaler = 16,
    long LocalStepScaler = 32678,
    long LocalStepClipper = 16)
{
    /// <summary>Throws a <see cref="UserInputException"/> naming the first out-of-range value.</summary>
    public void Validate()
    {
        if (!(Beta1 >= 0 && Beta1 < 1)) throw new UserInputException($"zero_one_adam beta1 = {Beta1} is outside [0, 1); use e.g. 0.9");
        if (!(Beta2 >= 0 && Beta2 < 1)) throw new UserInputException($"zero_one_adam beta2 = {Beta2} is outside [0, 1); use e.g. 0.999");
        if (!(Eps > 0)) throw new UserInputException($"zero_one_adam eps = {Eps} must be > 0 (it divides the frozen variance); use e.g. 1e-8");
        if (!(WeightDecay >= 0)) throw new UserInputException($"zero_one_adam weight_decay = {WeightDecay} must be ≥ 0");
        if (VarFreezeStep < 0) throw new UserInputException($"zero_one_adam var_freeze_step = {VarFreezeStep} must be ≥ 0");
        if (VarUpdateScaler < 1) throw new UserInputException($"zero_one_adam var_update_scaler = {VarUpdateScaler} must be ≥ 1; DeepSpeed's default is 16");
        if (LocalStepScaler < 1) throw new UserInputException($"zero_one_adam local_step_scaler = {LocalStepScaler} must be ≥ 1; DeepSpeed's default is 32678");
        if (LocalStepClipper < 1) throw new UserInputException($"zero_one_adam local_step_clipper = {LocalStepClipper} must be ≥ 1; DeepSpeed's default is 16");
    }
}
