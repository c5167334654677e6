using TorchSharp;
using TorchSharp.Modules;

namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// AdamW exactly as PyTorch 2.x computes it on CPU (<c>torch/optim/adam.py::_single_tensor_adam</c> with
/// <c>decoupled_weight_decay=True</c>, no amsgrad, no maximize), op for op:
/// <code>
/// t += 1
/// p  *= 1 − lr·λ                                  (decoupled weight decay)
/// m   = lerp(m, g, 1 − β1)
/// v   = β2·v + (1 − β2)·g²                        (mul_ then addcmul_)
/// p  −= lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε) (addcdiv_)
/// </code>
/// A parameter whose <c>.grad</c> is null is skipped, as in PyTorch. The state is plain tensors plus the step count,
/// so it checkpoints and resumes bit-identically.
/// </summary>
public sealed class AdamWOptimizer : IAdapterOptimizer
{
    private readonly AdamWOptions _options;
    private readonly torch.Tensor[] _expAvg;
    private readonly torch.Tensor[] _expAvgSq;
    private readonly long[] _steps;

    public AdamWOptimizer(IEnumerable<(string Name, Parameter Parameter)> parameters, AdamWOptions? options = null)
    {
        _options = options ?? new AdamWOptions();
        _options.Validate();
        Parameters = OptimizerStateTensors.Validate(parameters);
        _expAvg = Parameters.Select(p => OptimizerStateTensors.ZerosLike(p.Parameter)).ToArray();
        _expAvgSq = Parameters.Select(p => OptimizerStateTensors.ZerosLike(p.Parameter)).ToArray();
        _steps = new long[Parameters.Count];
    }

    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters { get; }

    /// <summary>AdamW expects gradients already averaged over ranks by the trainer.</summary>
    public bool CommunicatesGradients => false;

    public void Step(double lr)
    {
        double beta1 = _options.Beta1, beta2 = _options.Beta2;
        using var noGrad = torch.no_grad();
        for (int i = 0; i < Parameters.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var parameter = Parameters[i].Parameter;
            torch.Tensor? grad = parameter.grad;
            if (grad is null) continue;

            long step = ++_steps[i];
            if (_options.WeightDecay != 0) parameter.mul_(1 - lr * _options.WeightDecay);
            _expAvg[i].lerp_(grad, 1 - beta1);
            _expAvgSq[i].mul_(beta2).addcmul_(grad, grad, value: 1 - beta2);

            double biasCorrection1 = 1 - Math.Pow(beta1, step);
            double biasCorrection2 = 1 - Math.Pow(beta2, step);
            double stepSize = lr / biasCorrection1;
            double biasCorrection2Sqrt = Math.Pow(biasCorrection2, 0.5); // Python's `bias_correction2**0.5`
            torch.Tensor denom = _expAvgSq[i].sqrt().div_(biasCorrection2Sqrt).add_(_options.Eps);
            parameter.addcdiv_(_expAvg[i], denom, value: -stepSize);
        }
    }

    public void ZeroGrad()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        foreach (var (_, parameter) in Parameters) parameter.grad?.zero_();
    }

    public OptimizerCheckpoint StateDict()
    {
        if (_steps.Distinct().Count() > 1)
            throw new InvalidOperationException($"AdamW parameters have taken different step counts ({string.Join(", ", _steps.Distinct())}); a parameter without a gradient was skipped, which this checkpoint format does not record");
        var tensors = new Dictionary<string, torch.Tensor>();
        for (int i = 0; i < Parameters.Count; i++)
        {
            string name = Parameters[i].Name;
            tensors[name + ".exp_avg"] = OptimizerStateTensors.Snapshot(_expAvg[i]);
            tensors[name + ".exp_avg_sq"] = OptimizerStateTensors.Snapshot(_expAvgSq[i]);
        }
        return new OptimizerCheckpoint(tensors, new AdamWScalarState(_steps[0]));
    }

    public void LoadStateDict(OptimizerCheckpoint state)
    {
        var scalars = OptimizerStateTensors.ScalarsAs<AdamWScalarState>(state.Scalars, "AdamW");
        if (scalars.Step < 0) throw new UserInputException($"optimizer state step = {scalars.Step} is negative; the checkpoint is corrupt");
        int expected = Parameters.Count * 2;
        if (state.Tensors.Count != expected)
            throw new UserInputException($"optimizer state has {state.Tensors.Count} tensors, expected {expected} (exp_avg and exp_avg_sq for {Parameters.Count} parameters); resume with the same adapter config");
        for (int i = 0; i < Parameters.Count; i++)
        {
            string name = Parameters[i].Name;
            OptimizerStateTensors.LoadInto(state.Tensors, name + ".exp_avg", _expAvg[i]);
            OptimizerStateTensors.LoadInto(state.Tensors, name + ".exp_avg_sq", _expAvgSq[i]);
        }
        Array.Fill(_steps, scalars.Step);
    }

    public void Dispose()
    {
        foreach (var t in _expAvg) t.Dispose();
        foreach (var t in _expAvgSq) t.Dispose();
    }
}
