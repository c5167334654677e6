namespace FinQLoRA.Training.Optimizers;

/// <summary>AdamW hyperparameters with PyTorch's <c>torch.optim.AdamW</c> defaults (the learning rate comes per step).</summary>
public sealed record AdamWOptions(double Beta1 = 0.9, double Beta2 = 0.999, double Eps = 1e-8, double WeightDecay = 1e-2)
{
    /// <summary>Throws a <see cref="UserInputException"/> naming the first out-of-range value.</summary>
    public void Validate()
    {
        if (!(Beta1 >= 0 && Beta1 < 1)) throw new UserInputException($"adamw beta1 = {Beta1} is outside [0, 1); use e.g. 0.9");
        if (!(Beta2 >= 0 && Beta2 < 1)) throw new UserInputException($"adamw beta2 = {Beta2} is outside [0, 1); use e.g. 0.999");
        if (!(Eps >= 0)) throw new UserInputException($"adamw eps = {Eps} must be ≥ 0; use e.g. 1e-8");
        if (!(WeightDecay >= 0)) throw new UserInputException($"adamw weight_decay = {WeightDecay} must be ≥ 0");
    }
}
