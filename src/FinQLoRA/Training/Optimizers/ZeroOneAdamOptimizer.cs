using TorchSharp;
using TorchSharp.Modules;

namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// 0/1 Adam (Lu et al. 2022, arXiv 2202.06009) with the semantics of DeepSpeed's
/// <c>deepspeed/runtime/fp16/onebit/zoadam.py::ZeroOneAdam</c> (see docs/reference-algorithms.md §4). No bias
/// correction, no AMSGrad. Per step t (counted from 1, the first call included):
/// <code>
/// t = 1            initialisation step: DeepSpeed's first step() only builds its buffers; the gradient is dropped
///                  and no parameter moves.
/// before freeze, t % var_interval == 0   (variance-update step, full-precision gradient all-reduce)
///                  v = β2·v + (1−β2)·g²;  m = β1·m + (1−β1)·g
/// before freeze, otherwise               (1-bit step)
///                  g̃ = compressed_allreduce(g);  m = β1·m + (1−β1)·g̃;  v unchanged
/// before freeze, after the update        every var_update_scaler variance steps: var_interval *= 2
/// after freeze (local steps, no communication)
///                  m = β1·m + (1−β1)·g;  lrs += lr
/// every step       d = m/(√v+ε) + wd·p;  p −= lr·d;  after freeze also u −= lr·d
/// after freeze, t % local_step_interval == 0   (1-bit sync)
///                  p −= u;  u *= √v+ε;  u = compressed_allreduce(u);  m = −u/lrs;  p += u/(√v+ε);  u = 0;  lrs = 0
/// after freeze, after the update         every local_step_scaler local steps:
///                  local_step_interval = min(local_step_clipper, 2·local_step_interval)
/// end of step t    if t > var_freeze_step: freeze (and, the first time, zero all error-feedback buffers, because
///                  from now on they compensate u instead of g)
/// </code>
/// DeepSpeed keeps the scalars (step, intervals, counters, lrs) per parameter; they are equal for every parameter
/// when all of them have a gradient at every step, which this class requires, so it keeps one copy.
/// <para>
/// Deliberate difference: DeepSpeed skips the compressed all-reduce when the world size is 1, which with one rank
/// drops the gradient on 1-bit steps (m is not updated) and leaves u uncompressed at syncs. Here the optimizer always
/// calls <see cref="IOptimizerCommunication"/>, and <see cref="LocalCommunication"/> applies the one-rank compression,
/// so a single-process run follows the same math as every rank of a multi-rank run.
/// </para>
/// <para>
/// Checkpoints hold everything (m, v, u, error-feedback buffers, scalars), so resume is bit-identical; DeepSpeed's
/// own <c>load_state_dict</c> drops u and the error buffers and re-runs the initialisation step instead.
/// </para>
/// </summary>
public sealed class ZeroOneAdamOptimizer : IAdapterOptimizer
{
    private const string CommunicationPrefix = "communication/";

    private readonly ZeroOneAdamOptions _options;
    private readonly IOptimizerCommunication _communication;
    private readonly FlatParameterBuffers? _flat;
    private readonly torch.Tensor? _flatExpAvg;
    private readonly torch.Tensor? _flatExpAvgSq;
    private readonly torch.Tensor? _flatMomentumAccumulator;
    private readonly torch.Tensor[] _expAvg;
    private readonly torch.Tensor[] _expAvgSq;
    private readonly torch.Tensor[] _momentumAccumulator;

    private long _step;
    private long _varInterval = 1;
    private long _varCounter;
    private long _localStepInterval = 1;
    private long _localStepCounter;
    private double _lrs;
    private bool _initialized;
    private bool _frozen;
    private bool _errorBuffersReset;

    public ZeroOneAdamOptimizer(IEnumerable<(string Name, Parameter Parameter)> parameters, IOptimizerCommunication communication, ZeroOneAdamOptions? options = null)
        : this(parameters, communication, options, flatBuffers: true)
    {
    }

    /// <param name="flatBuffers">false keeps every step per parameter (the reference that tests compare against)</param>
    internal ZeroOneAdamOptimizer(IEnumerable<(string Name, Parameter Parameter)> parameters, IOptimizerCommunication communication, ZeroOneAdamOptions? options, bool flatBuffers)
    {
        _options = options ?? new ZeroOneAdamOptions();
        _options.Validate();
        _communication = communication;
        Parameters = OptimizerStateTensors.Validate(parameters);
        _flat = flatBuffers ? FlatParameterBuffers.TryCreate(Parameters.Select(p => p.Parameter).ToList()) : null;
        if (_flat is null)
        {
            _expAvg = Parameters.Select(p => OptimizerStateTensors.ZerosLike(p.Parameter)).ToArray();
            _expAvgSq = Parameters.Select(p => OptimizerStateTensors.ZerosLike(p.Parameter)).ToArray();
            _momentumAccumulator = Parameters.Select(p => OptimizerStateTensors.ZerosLike(p.Parameter)).ToArray();
        }
        else
        {
            // Per-parameter state as views of flat buffers: local steps update all at once, checkpoints stay per name.
            _flatExpAvg = OptimizerStateTensors.ZerosLike(_flat.Values);
            _flatExpAvgSq = OptimizerStateTensors.ZerosLike(_flat.Values);
            _flatMomentumAccumulator = OptimizerStateTensors.ZerosLike(_flat.Values);
            _expAvg = _flat.Views(_flatExpAvg);
            _expAvgSq = _flat.Views(_flatExpAvgSq);
            _momentumAccumulator = _flat.Views(_flatMomentumAccumulator);
        }
    }

    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters { get; }

    /// <summary>0/1 Adam all-reduces (full precision or 1-bit) the gradients itself inside <see cref="Step"/>.</summary>
    public bool CommunicatesGradients => true;

    /// <summary>Steps taken so far, the initialisation step included (DeepSpeed's <c>state['step']</c>).</summary>
    public long StepCount => _step;

    /// <summary>True once the variance is frozen and the optimizer takes local steps.</summary>
    public bool Frozen => _frozen;

    /// <summary>
    /// Whether the next <see cref="Step"/> all-reduces gradients in full precision (a variance-update step), i.e.
    /// DeepSpeed's <c>enable_backward_allreduce</c>: true until the first step, then <c>(t+1) % var_interval == 0</c>
    /// before the freeze and false after it.
    /// </summary>
    public bool FullPrecisionThisStep => !_frozen && (_step + 1) % _varInterval == 0;

    /// <summary>Whether the next <see cref="Step"/> ends with a 1-bit synchronisation of the local updates.</summary>
    public bool SyncThisStep => _frozen && (_step + 1) % _localStepInterval == 0;

    /// <summary>Whether the last <see cref="Step"/> was a local step run over the flat buffers (for tests).</summary>
    internal bool LastStepFused { get; private set; }

    public void Step(double lr)
    {
        using var stepScope = torch.NewDisposeScope(); // releases the .grad wrappers fetched below
        var grads = new torch.Tensor[Parameters.Count];
        for (int i = 0; i < Parameters.Count; i++)
            grads[i] = Parameters[i].Parameter.grad
                ?? throw new InvalidOperationException($"0/1 Adam needs a gradient for every parameter at every step, but '{Parameters[i].Name}' has none (its step counters would fall out of step with the others)");

        long step = _step + 1;
        if (_initialized && _frozen && step % _localStepInterval == 0 && _lrs + lr == 0)
            throw new UserInputException($"0/1 Adam would synchronise at step {step} after local steps whose learning rates sum to 0 (m = −u/lrs is undefined); set var_freeze_step beyond the warm-up steps");

        _step = step;
        if (!_initialized)
        {
            // zoadam.py: the first step() allocates the error buffers, runs one compressed all-reduce of the zero
            // momentum accumulator (a no-op on the values), sets initialize = True and returns before any update.
            _initialized = true;
            return;
        }

        bool frozen = _frozen;
        bool varianceStep = !frozen && _step % _varInterval == 0;
        bool sync = frozen && _step % _localStepInterval == 0;
        if (frozen) _lrs += lr;

        double beta1 = _options.Beta1, beta2 = _options.Beta2;
        using var noGrad = torch.no_grad();
        // A local step without sync touches no communication, so it runs once over the flat buffers (the same
        // elementwise ops, so bit-identical); steps that communicate go per parameter, as the exchange is per name.
        LastStepFused = frozen && !sync && _flat is not null && _flat.TryBindGradients();
        if (LastStepFused)
        {
            using var scope = torch.NewDisposeScope();
            _flatExpAvg!.mul_(beta1).add_(_flat!.Grads, alpha: 1 - beta1);
            ApplyUpdate(_flat.Values, _flatExpAvg, _flatExpAvgSq!, _flatMomentumAccumulator!, lr, frozen);
        }
        else
        {
            for (int i = 0; i < Parameters.Count; i++)
            {
                using var scope = torch.NewDisposeScope();
                var (name, parameter) = Parameters[i];
                torch.Tensor grad = grads[i], m = _expAvg[i], v = _expAvgSq[i], u = _momentumAccumulator[i];

                if (!frozen)
                {
                    if (varianceStep)
                    {
                        // Phase 1: the engine all-reduced g in full precision; update both moments.
                        _communication.AllReduceAverage(grad);
                        v.mul_(beta2).addcmul_(grad, grad, value: 1 - beta2);
                        m.mul_(beta1).add_(grad, alpha: 1 - beta1);
                    }
                    else
                    {
                        // Phase 2: g goes through the 1-bit compressed all-reduce (in place); only m moves.
                        torch.Tensor compressed = _communication.CompressedAllReduce(grad, name);
                        m.mul_(beta1).add_(compressed, alpha: 1 - beta1);
                    }
                }
                else
                {
                    // Phase 5: local step on this rank's own gradient.
                    m.mul_(beta1).add_(grad, alpha: 1 - beta1);
                }

                ApplyUpdate(parameter, m, v, u, lr, frozen);

                if (sync)
                {
                    // Phase 6: undo the local updates, exchange them compressed in "gradient units" (times √v+ε),
                    // rebuild m from the average and apply the averaged update instead.
                    parameter.add_(u * -1);
                    u.mul_(v.sqrt() + _options.Eps);
                    torch.Tensor averaged = _communication.CompressedAllReduce(u, name);
                    m.zero_().add_(averaged / _lrs, alpha: -1);
                    parameter.add_(averaged / (v.sqrt() + _options.Eps));
                    u.zero_();
                }
            }
        }

        if (!frozen)
        {
            // Phase 3: the gaps between variance updates double every var_update_scaler updates.
            if (varianceStep && ++_varCounter == _options.VarUpdateScaler)
            {
                _varCounter = 0;
                _varInterval *= 2;
            }
        }
        else
        {
            if (sync) _lrs = 0;
            // Phase 7: the sync interval doubles every local_step_scaler local steps, up to the clipper (H).
            if (++_localStepCounter == _options.LocalStepScaler)
            {
                _localStepCounter = 0;
                _localStepInterval = Math.Min(_options.LocalStepClipper, _localStepInterval * 2);
            }
        }

        // Phase 4: freeze after step var_freeze_step + 1; the error buffers restart from zero once, for u.
        if (_step > _options.VarFreezeStep) _frozen = true;
        if (_frozen && !_errorBuffersReset)
        {
            _communication.ResetCompressionErrors();
            _errorBuffersReset = true;
        }
    }

    /// <summary>Every step: p −= lr·(m/(√v+ε) + wd·p); after the freeze u accumulates the same (negative) update.</summary>
    private void ApplyUpdate(torch.Tensor parameter, torch.Tensor m, torch.Tensor v, torch.Tensor u, double lr, bool frozen)
    {
        torch.Tensor update = m / (v.sqrt() + _options.Eps);
        if (_options.WeightDecay > 0) update.add_(parameter * _options.WeightDecay);
        torch.Tensor scaledUpdate = update * -lr;
        parameter.add_(scaledUpdate);
        if (frozen) u.add_(scaledUpdate);
    }

    public void ZeroGrad() => AdapterGradients.Zero(Parameters);

    public OptimizerCheckpoint StateDict()
    {
        var tensors = OptimizerStateTensors.Snapshots(Parameters, ("exp_avg", _expAvg), ("exp_avg_sq", _expAvgSq),
            ("momentum_accumulator", _momentumAccumulator));
        foreach (var (key, tensor) in _communication.SaveCompressionErrors())
            tensors[CommunicationPrefix + key] = tensor;
        var scalars = new ZeroOneAdamScalarState(_step, _varInterval, _varCounter, _localStepInterval, _localStepCounter,
            _lrs, _initialized, _frozen, _errorBuffersReset);
        return new OptimizerCheckpoint(tensors, scalars);
    }

    public void LoadStateDict(OptimizerCheckpoint state)
    {
        var s = OptimizerStateTensors.ScalarsAs<ZeroOneAdamScalarState>(state.Scalars, "0/1 Adam");
        if (s.Step < 0 || s.VarInterval < 1 || s.LocalStepInterval < 1 || s.VarCounter < 0 || s.LocalStepCounter < 0)
            throw new UserInputException($"0/1 Adam state has step {s.Step}, var_interval {s.VarInterval}, local_step_interval {s.LocalStepInterval}: out of range, the checkpoint is corrupt");
        var own = state.Tensors.Where(kv => !kv.Key.StartsWith(CommunicationPrefix, StringComparison.Ordinal)).ToList();
        int expected = Parameters.Count * 3;
        if (own.Count != expected)
            throw new UserInputException($"optimizer state has {own.Count} tensors, expected {expected} (exp_avg, exp_avg_sq, momentum_accumulator for {Parameters.Count} parameters); resume with the same adapter config");
        OptimizerStateTensors.LoadAll(state.Tensors, Parameters, ("exp_avg", _expAvg), ("exp_avg_sq", _expAvgSq),
            ("momentum_accumulator", _momentumAccumulator));
        _communication.LoadCompressionErrors(state.Tensors
            .Where(kv => kv.Key.StartsWith(CommunicationPrefix, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[CommunicationPrefix.Length..], kv => kv.Value));

        _step = s.Step;
        _varInterval = s.VarInterval;
        _varCounter = s.VarCounter;
        _localStepInterval = s.LocalStepInterval;
        _localStepCounter = s.LocalStepCounter;
        _lrs = s.Lrs;
        _initialized = s.Initialized;
        _frozen = s.Frozen;
        _errorBuffersReset = s.ErrorBuffersReset;
    }

    public void Dispose()
    {
        foreach (var t in _expAvg) t.Dispose();
        foreach (var t in _expAvgSq) t.Dispose();
        foreach (var t in _momentumAccumulator) t.Dispose();
        _flatExpAvg?.Dispose();
        _flatExpAvgSq?.Dispose();
        _flatMomentumAccumulator?.Dispose();
        _flat?.Dispose();
    }
}
