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
/// A parameter whose <c>.grad</c> is null is skipped, as in PyTorch. The arithmetic runs once over flat buffers of all
/// parameters (see <see cref="FlatParameterBuffers"/>), not once per parameter: a QLoRA run has hundreds of small
/// adapter tensors, so per-op overhead would dominate. The state is plain tensors plus the step count, so it
/// checkpoints and resumes bit-identically.
/// </summary>
public sealed class AdamWOptimizer : IAdapterOptimizer
{
    private readonly AdamWOptions _options;
    private readonly FlatParameterBuffers? _flat;
    private readonly torch.Tensor? _flatExpAvg;
    private readonly torch.Tensor? _flatExpAvgSq;
    private readonly torch.Tensor[] _expAvg;
    private readonly torch.Tensor[] _expAvgSq;
    private readonly ParameterStepCounts _steps;

    /// <remarks>
    /// The parameters are moved (values unchanged) into one flat buffer that this optimizer shares with them, so
    /// <see cref="Step"/> updates all of them at once; see <see cref="FlatParameterBuffers"/>.
    /// </remarks>
    public AdamWOptimizer(IEnumerable<(string Name, Parameter Parameter)> parameters, AdamWOptions? options = null)
    {
        _options = options ?? new AdamWOptions();
        _options.Validate();
        Parameters = OptimizerStateTensors.Validate(parameters);
        _flat = FlatParameterBuffers.TryCreate(Parameters.Select(p => p.Parameter).ToList());
        if (_flat is null)
        {
            _expAvg = Parameters.Select(p => OptimizerStateTensors.ZerosLike(p.Parameter)).ToArray();
            _expAvgSq = Parameters.Select(p => OptimizerStateTensors.ZerosLike(p.Parameter)).ToArray();
        }
        else
        {
            // The per-parameter state tensors are views of the flat ones, so checkpoints keep their per-name format.
            _flatExpAvg = OptimizerStateTensors.ZerosLike(_flat.Values);
            _flatExpAvgSq = OptimizerStateTensors.ZerosLike(_flat.Values);
            _expAvg = _flat.Views(_flatExpAvg);
            _expAvgSq = _flat.Views(_flatExpAvgSq);
        }
        _steps = new ParameterStepCounts(Parameters.Count);
    }

    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters { get; }

    /// <summary>AdamW expects gradients already averaged over ranks by the trainer.</summary>
    public bool CommunicatesGradients => false;

    /// <summary>Whether the last <see cref="Step"/> ran over the flat buffers (for tests).</summary>
    internal bool LastStepFused => _steps.LastStepFused;

    /// <summary>Parameter <paramref name="i"/>'s first moment (for tests; <see cref="StateDict"/> needs equal steps).</summary>
    internal torch.Tensor ExpAvg(int i) => _expAvg[i];

    /// <summary>Parameter <paramref name="i"/>'s second moment (for tests).</summary>
    internal torch.Tensor ExpAvgSq(int i) => _expAvgSq[i];

    /// <summary>One update of every parameter that has a gradient: over the flat buffers when it can, else one
    /// parameter at a time (<see cref="ParameterStepCounts"/>).</summary>
    public void Step(double lr)
    {
        using var noGrad = torch.no_grad();
        _steps.Step(_flat, Parameters,
            step => Update(_flat!.Values, _flat.Grads, _flatExpAvg!, _flatExpAvgSq!, step, lr),
            (i, grad, step) => Update(Parameters[i].Parameter, grad, _expAvg[i], _expAvgSq[i], step, lr));
    }

    /// <summary>PyTorch's <c>_single_tensor_adam</c> body for one (possibly flat) parameter, op for op.</summary>
    private void Update(torch.Tensor parameter, torch.Tensor grad, torch.Tensor expAvg, torch.Tensor expAvgSq, long step, double lr)
    {
        using var scope = torch.NewDisposeScope();
        double beta1 = _options.Beta1, beta2 = _options.Beta2;
        if (_options.WeightDecay != 0) parameter.mul_(1 - lr * _options.WeightDecay);
        expAvg.lerp_(grad, 1 - beta1);
        expAvgSq.mul_(beta2).addcmul_(grad, grad, value: 1 - beta2);

        double biasCorrection1 = 1 - Math.Pow(beta1, step);
        double biasCorrection2 = 1 - Math.Pow(beta2, step);
        double stepSize = lr / biasCorrection1;
        double biasCorrection2Sqrt = Math.Pow(biasCorrection2, 0.5); // Python's `bias_correction2**0.5`
        torch.Tensor denom = expAvgSq.sqrt().div_(biasCorrection2Sqrt).add_(_options.Eps);
        parameter.addcdiv_(expAvg, denom, value: -stepSize);
    }

    public void ZeroGrad() => AdapterGradients.Zero(Parameters);

    public OptimizerCheckpoint StateDict()
    {
        var tensors = OptimizerStateTensors.Snapshots(Parameters, ("exp_avg", _expAvg), ("exp_avg_sq", _expAvgSq));
        return new OptimizerCheckpoint(tensors, new AdamWScalarState(_steps.Common("AdamW")));
    }

    public void LoadStateDict(OptimizerCheckpoint state)
    {
        var scalars = OptimizerStateTensors.ScalarsAs<AdamWScalarState>(state.Scalars, "AdamW");
        if (scalars.Step < 0) throw new UserInputException($"optimizer state step = {scalars.Step} is negative; the checkpoint is corrupt");
        int expected = Parameters.Count * 2;
        if (state.Tensors.Count != expected)
            throw new UserInputException($"optimizer state has {state.Tensors.Count} tensors, expected {expected} (exp_avg and exp_avg_sq for {Parameters.Count} parameters); resume with the same adapter config");
        OptimizerStateTensors.LoadAll(state.Tensors, Parameters, ("exp_avg", _expAvg), ("exp_avg_sq", _expAvgSq));
        _steps.Reset(scalars.Step);
    }

    public void Dispose()
    {
        foreach (var t in _expAvg) t.Dispose();
        foreach (var t in _expAvgSq) t.Dispose();
        _flatExpAvg?.Dispose();
        _flatExpAvgSq?.Dispose();
        _flat?.Dispose();
    }
}
