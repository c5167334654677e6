using TorchSharp;
using TorchSharp.Modules;

namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// SGD exactly as PyTorch 2.x computes it on CPU (<c>torch/optim/sgd.py::_single_tensor_sgd</c> with dampening 0, no
/// Nesterov, no maximize), op for op:
/// <code>
/// d  = g + λ·p                  (weight decay as an L2 term on the gradient, only when λ ≠ 0; .grad is left alone)
/// b  = clone(d)                 (the first step of a parameter: PyTorch's buffer is None until then)
/// b  = μ·b + (1 − 0)·d          (later steps: mul_ then add_)
/// p −= lr·b                     (or lr·d when μ = 0: no buffer exists)
/// </code>
/// A parameter whose <c>.grad</c> is null is skipped, as in PyTorch. As <see cref="AdamWOptimizer"/> does, the update
/// runs once over flat buffers of all parameters (see <see cref="FlatParameterBuffers"/>) when it can; the ops are
/// elementwise, so that is bit-identical to the per-parameter loop. The state is the momentum buffers plus the step
/// count, so it checkpoints and resumes bit-identically.
/// </summary>
public sealed class SgdOptimizer : IAdapterOptimizer
{
    /// <summary>PyTorch's default; the update is written with it so that it reads as PyTorch's line does.</summary>
    private const double Dampening = 0.0;

    private readonly SgdOptions _options;
    private readonly FlatParameterBuffers? _flat;
    private readonly torch.Tensor? _flatMomentum;
    /// <summary>One buffer per parameter, or none at all when momentum is 0 (PyTorch keeps none either).</summary>
    private readonly torch.Tensor[] _momentum;
    private readonly ParameterStepCounts _steps;

    /// <remarks>
    /// The parameters are moved (values unchanged) into one flat buffer that this optimizer shares with them, so
    /// <see cref="Step"/> updates all of them at once; see <see cref="FlatParameterBuffers"/>.
    /// </remarks>
    public SgdOptimizer(IEnumerable<(string Name, Parameter Parameter)> parameters, SgdOptions? options = null)
        : this(parameters, options, flatBuffers: true)
    {
    }

    /// <param name="flatBuffers">false keeps every step per parameter (the reference that tests compare against)</param>
    internal SgdOptimizer(IEnumerable<(string Name, Parameter Parameter)> parameters, SgdOptions? options, bool flatBuffers)
    {
        _options = options ?? new SgdOptions();
        _options.Validate();
        Parameters = OptimizerStateTensors.Validate(parameters);
        _flat = flatBuffers ? FlatParameterBuffers.TryCreate(Parameters.Select(p => p.Parameter).ToList()) : null;
        if (!HasMomentum) _momentum = [];
        else if (_flat is null) _momentum = Parameters.Select(p => OptimizerStateTensors.ZerosLike(p.Parameter)).ToArray();
        else
        {
            // Per-parameter buffers as views of one flat buffer, so checkpoints keep their per-name format.
            _flatMomentum = OptimizerStateTensors.ZerosLike(_flat.Values);
            _momentum = _flat.Views(_flatMomentum);
        }
        _steps = new ParameterStepCounts(Parameters.Count);
    }

    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters { get; }

    /// <summary>SGD expects gradients already averaged over ranks by the trainer.</summary>
    public bool CommunicatesGradients => false;

    /// <summary>Whether the last <see cref="Step"/> ran over the flat buffers (for tests).</summary>
    internal bool LastStepFused => _steps.LastStepFused;

    private bool HasMomentum => _options.Momentum != 0;

    /// <summary>Parameter <paramref name="i"/>'s momentum buffer (for tests; only when momentum ≠ 0).</summary>
    internal torch.Tensor MomentumBuffer(int i) => _momentum[i];

    /// <summary>One update of every parameter that has a gradient: over the flat buffers when it can, else one
    /// parameter at a time (<see cref="ParameterStepCounts"/>).</summary>
    public void Step(double lr)
    {
        using var noGrad = torch.no_grad();
        _steps.Step(_flat, Parameters,
            step => Update(_flat!.Values, _flat.Grads, _flatMomentum, firstStep: step == 1, lr),
            (i, grad, step) => Update(Parameters[i].Parameter, grad, HasMomentum ? _momentum[i] : null, firstStep: step == 1, lr));
    }

    /// <summary>PyTorch's <c>_single_tensor_sgd</c> body for one (possibly flat) parameter, op for op.</summary>
    private void Update(torch.Tensor parameter, torch.Tensor grad, torch.Tensor? momentumBuffer, bool firstStep, double lr)
    {
        using var scope = torch.NewDisposeScope();
        // Out of place, as PyTorch's d_p.add(param, ...): the decayed gradient must not leak into .grad.
        torch.Tensor direction = _options.WeightDecay != 0 ? grad.add(parameter, alpha: _options.WeightDecay) : grad;
        if (momentumBuffer is not null)
        {
            if (firstStep) momentumBuffer.copy_(direction);
            else momentumBuffer.mul_(_options.Momentum).add_(direction, alpha: 1 - Dampening);
            direction = momentumBuffer;
        }
        parameter.add_(direction, alpha: -lr);
    }

    public void ZeroGrad() => AdapterGradients.Zero(Parameters);

    public OptimizerCheckpoint StateDict()
    {
        var tensors = OptimizerStateTensors.Snapshots(Parameters, ("momentum_buffer", _momentum));
        return new OptimizerCheckpoint(tensors, new SgdScalarState(_steps.Common("SGD"), _options.Momentum));
    }

    public void LoadStateDict(OptimizerCheckpoint state)
    {
        var scalars = OptimizerStateTensors.ScalarsAs<SgdScalarState>(state.Scalars, "SGD");
        if (scalars.Step < 0) throw new UserInputException($"optimizer state step = {scalars.Step} is negative; the checkpoint is corrupt");
        if (scalars.Momentum != _options.Momentum)
            throw UserInputException.About($"optimizer state was written with sgd momentum {scalars.Momentum}, but this run has {_options.Momentum}; resume with {new ConfigField("momentum")} {scalars.Momentum}");
        if (state.Tensors.Count != _momentum.Length)
            throw new UserInputException($"optimizer state has {state.Tensors.Count} tensors, expected {_momentum.Length} (a momentum_buffer for each of {Parameters.Count} parameters when momentum ≠ 0); resume with the same adapter config");
        OptimizerStateTensors.LoadAll(state.Tensors, Parameters, ("momentum_buffer", _momentum));
        _steps.Reset(scalars.Step);
    }

    public void Dispose()
    {
        foreach (var t in _momentum) t.Dispose();
        _flatMomentum?.Dispose();
        _flat?.Dispose();
    }
}
