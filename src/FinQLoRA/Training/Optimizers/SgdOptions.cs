namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// SGD hyperparameters with <c>torch.optim.SGD</c>'s defaults (the learning rate comes per step). Dampening is 0 and
/// Nesterov is off, PyTorch's defaults, and are not offered: the train config has no keys for them.
/// </summary>
/// <param name="Momentum">the momentum factor μ; 0 keeps no momentum buffer at all, as in PyTorch</param>
/// <param name="WeightDecay">the L2 penalty λ, added to the gradient (λ·p) before momentum, not decoupled</param>
public sealed record SgdOptions(double Momentum = 0.0, double WeightDecay = 0.0)
{
    /// <summary>Throws a <see cref="UserInputException"/> naming the first out-of-range value.</summary>
    public void Validate()
    {
        if (!(Momentum >= 0 && Momentum < 1)) throw new UserInputException($"sgd momentum = {Momentum} is outside [0, 1); use e.g. 0.9 (or 0 for plain SGD)");
        if (!(WeightDecay >= 0 && double.IsFinite(WeightDecay))) throw new UserInputException($"sgd weight_decay = {WeightDecay} must be a finite number ≥ 0");
    }
}
