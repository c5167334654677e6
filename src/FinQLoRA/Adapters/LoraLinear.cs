using System.Text.RegularExpressions;
using FinQLoRA.Adapters.GradientCapture;
using FinQLoRA.Models;
using FinQLoRA.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// A frozen projection (dense or quantized, any <see cref="IFrozenLinear"/> module) with named LoRA adapters
/// (Hu et al. 2021; PEFT <c>lora.Linear</c>). With adapter a active:
/// <code>
///   LoRA:  y = W₀x + s · B(A(dropout(x)))
///   DoRA:  y = W₀x + (m/n − 1) · W₀x' + (m/n) · s · B(A(x'))      x' = dropout(x), n = ‖W₀ + s·BA‖ per row, detached
/// </code>
/// s = α/r (or α/√r with rsLoRA). The base runs in the input dtype (bf16); the adapter branch runs in fp32
/// (x is cast up, the sum cast back to the base output dtype), as PEFT does with its adapter autocast. In DoRA
/// the base term reuses W₀x unless dropout is active, when W₀·dropout(x) is recomputed (PEFT's DoraLinearVariant).
/// With no active adapter the module is exactly its base.
/// </summary>
public sealed partial class LoraLinear : nn.Module<Tensor, Tensor>, IAdaptedProjection
{
    public const string DefaultAdapter = "default";
    private const string BaseName = "base_layer";

    private readonly nn.Module<Tensor, Tensor> base_layer;
    private readonly Dictionary<string, LoraAdapter> _adapters = new(StringComparer.Ordinal);
    private string? _active;

    public LoraLinear(nn.Module<Tensor, Tensor> baseLayer) : base(nameof(LoraLinear))
    {
        if (baseLayer is not IFrozenLinear frozen)
            throw new ArgumentException($"LoRA wraps frozen projections that implement {nameof(IFrozenLinear)}; got {baseLayer.GetType().Name}", nameof(baseLayer));
        if (baseLayer is LoraLinear) throw new ArgumentException("the projection is already wrapped in a LoraLinear; add a named adapter to it instead", nameof(baseLayer));
        base_layer = baseLayer;
        Frozen = frozen;
        RegisterComponents();
    }

    public nn.Module<Tensor, Tensor> BaseLayer => base_layer;
    public IFrozenLinear Frozen { get; }
    public long InFeatures => Frozen.InFeatures;
    public long OutFeatures => Frozen.OutFeatures;
    public IReadOnlyDictionary<string, LoraAdapter> Adapters => _adapters;

    /// <summary>All adapters stacked for batches whose rows use different adapters (the server sets it); while its
    /// <see cref="LoraRowSelection.Rows"/> is set, <see cref="forward"/> uses it instead of the active adapter.</summary>
    public StackedLora? Stacked { get; set; }

    /// <summary>Set while differentially private training computes per-example gradients: the active adapter's forwards
    /// (with grad) record what those need (<see cref="LoraGradientCapture"/>). Null otherwise; the output is the same.</summary>
    public LoraGradientCapture? Capture { get; set; }

    /// <summary>The adapter used by <see cref="forward"/>; null runs the base alone.</summary>
    public string? ActiveAdapter
    {
        get => _active;
        set
        {
            if (value is not null && !_adapters.ContainsKey(value))
                throw new ArgumentException($"no adapter '{value}' on this projection (has: {string.Join(", ", _adapters.Keys)})", nameof(value));
            _active = value;
        }
    }

    /// <summary>
    /// Adds a freshly initialised adapter (A Kaiming-uniform from <paramref name="generator"/>, B zero, DoRA's m = ‖W₀‖
    /// per row) and makes it active. The weights are fp32 on the base's device.
    /// </summary>
    public LoraAdapter AddAdapter(string name, LoraConfig config, Generator generator)
    {
        ValidateName(name);
        if (_adapters.ContainsKey(name)) throw new ArgumentException($"adapter '{name}' already exists on this projection", nameof(name));
        using var noGrad = no_grad();
        var device = BaseDevice();
        var a = LoraInit.LoraA(config.Rank, InFeatures, generator).to(device);
        var b = LoraInit.LoraB(OutFeatures, config.Rank).to(device);
        Tensor? magnitude = null;
        if (config.UseDora)
        {
            // m = ‖W₀ + s·BA‖ per output row (= ‖W₀‖ since B = 0), computed in fp32 as PEFT's get_weight_norm.
            using var scope = NewDisposeScope();
            var w = Frozen.DequantizedWeight(ScalarType.Float32) + (b.matmul(a) * config.Scaling);
            magnitude = RowNorm(w).MoveToOuterDisposeScope();
        }
        var adapter = new LoraAdapter(name, a, b, magnitude, config.Scaling, config.Dropout);
        if (config.FreezeA) adapter.FreezeA();
        _adapters[name] = adapter;
        register_module("lora_" + name, adapter);
        _active = name;
        return adapter;
    }

    /// <summary>Adds an adapter made elsewhere (weights read back from host memory by a server) without making it
    /// active; its tensors must be on this projection's device with its shapes.</summary>
    public void AttachAdapter(LoraAdapter adapter)
    {
        ValidateName(adapter.Name);
        if (_adapters.ContainsKey(adapter.Name)) throw new ArgumentException($"adapter '{adapter.Name}' already exists on this projection", nameof(adapter));
        if (adapter.A.shape[1] != InFeatures || adapter.B.shape[0] != OutFeatures)
            throw new ArgumentException($"adapter '{adapter.Name}' is {adapter.A.shape[1]} → {adapter.B.shape[0]}, the projection {InFeatures} → {OutFeatures}", nameof(adapter));
        _adapters[adapter.Name] = adapter;
        register_module("lora_" + adapter.Name, adapter);
    }

    /// <summary>Drops an adapter and frees its weights; the active adapter becomes none if it was this one.</summary>
    public void RemoveAdapter(string name)
    {
        if (!_adapters.Remove(name, out var adapter)) throw new ArgumentException($"no adapter '{name}' on this projection", nameof(name));
        register_module("lora_" + name, null!); // TorchSharp unregisters a submodule when given null
        adapter.Dispose();
        if (_active == name) _active = null;
    }

    /// <summary>Every tensor of one adapter (the active one by default) with its PEFT key suffix
    /// (<c>lora_A.weight</c>, <c>lora_B.weight</c>, <c>lora_magnitude_vector</c>): what is saved, frozen A included.</summary>
    public IEnumerable<(string Name, Parameter P)> AdapterParameters(string? adapter = null)
    {
        string name = adapter ?? _active ?? throw new InvalidOperationException("no adapter named and none active");
        return _adapters.TryGetValue(name, out var a) ? a.Tensors() : [];
    }

    /// <summary>The tensors of one adapter an optimizer updates: <see cref="AdapterParameters"/> less a frozen A (FFA-LoRA).</summary>
    public IEnumerable<(string Name, Parameter P)> TrainableParameters(string? adapter = null)
    {
        string name = adapter ?? _active ?? throw new InvalidOperationException("no adapter named and none active");
        return _adapters.TryGetValue(name, out var a) ? a.TrainableTensors() : [];
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        if (FusedGemvForward(x) is { } fused) return fused.MoveToOuterDisposeScope();
        return Adapt(x, base_layer.forward(x)).MoveToOuterDisposeScope();
    }

    /// <summary>The output given the base's output <paramref name="result"/> for <paramref name="x"/> (made here, or by a
    /// fused matmul of several bases: <see cref="FusedProjections"/>). It returns <paramref name="result"/> itself when
    /// no adapter is active, and otherwise a new tensor in the caller's dispose scope; it never moves the caller's tensors.</summary>
    public Tensor Adapt(Tensor x, Tensor result)
    {
        if (Stacked is null && _active is null) return result;
        using var scope = NewDisposeScope();
        if (Stacked is { Selection.Rows: { } rows } stacked)
        {
            var mixed = stacked.Apply(x, result, rows);
            return ReferenceEquals(mixed, result) ? result : mixed.MoveToOuterDisposeScope(); // base-only batches get the base back
        }
        if (_active is null) return result;

        var adapter = _adapters[_active];
        if (CanAdaptTogether([this])) return AdaptTogether(x, [result], [this])[0].MoveToOuterDisposeScope();
        var x32 = x.to(adapter.A.dtype);
        bool dropping = adapter.Dropout > 0 && training;
        var xd = !dropping ? x32
            : TrainingFusions.Enabled ? DroppedAlone(x, x32, adapter.Dropout) // the mask the group node draws for this branch
            : nn.functional.dropout(x32, adapter.Dropout, training: true);
        var record = Capture?.BeginForward();
        var u = nn.functional.linear(xd, adapter.A);
        if (record is not null) u = Capture!.TapLowRank(record, xd, u);
        var z = nn.functional.linear(u, adapter.B);
        if (record is not null) z = Capture!.TapOutput(record, z);
        var lora = z * adapter.Scaling;

        Tensor y;
        if (adapter.Magnitude is null)
        {
            y = result + lora; // fp32 + bf16 promotes to fp32, as in PEFT; cast back below
        }
        else
        {
            var w = Frozen.DequantizedWeight(ScalarType.Float32);
            Tensor norm;
            using (no_grad()) norm = RowNorm(w + adapter.DeltaWeight()); // detached: no gradient through n (DoRA §4.3)
            var scale = adapter.Magnitude / norm;                            // [out]
            if (record is not null) scale = Capture!.TapScale(record, scale, norm, lora.shape); // [.., out] per token
            var baseTerm = dropping ? nn.functional.linear(xd, w) : result;
            y = result + (scale - 1) * baseTerm + scale * lora;
        }
        return y.to(result.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The training path (issue 26): the plain LoRA adapters of every projection of the group as one autograd node
    /// (<see cref="LoraGroupFunction"/>). Also in training without gradients: a checkpointed layer's first forward must
    /// draw the dropout masks its recomputation will draw. Not where the group is not that: eval without gradients
    /// (inference keeps its path), FINQLORA_FUSED_STEP=off, DoRA, a frozen A, stacked adapters, per-example gradient
    /// capture, ranks, scales, dropouts or dtypes that differ.</summary>
    public bool CanAdaptTogether(IReadOnlyList<IAdaptedProjection> group) =>
        TrainingFusions.Enabled && (is_grad_enabled() || training) && GroupAdapters(group) is not null;

    public Tensor[] AdaptTogether(Tensor x, IReadOnlyList<Tensor> bases, IReadOnlyList<IAdaptedProjection> group)
    {
        var adapters = GroupAdapters(group) ?? throw new InvalidOperationException("these projections cannot adapt together (CanAdaptTogether is false)");
        return LoraGroupFunction.Apply(x, bases, adapters, dropping: training && adapters[0].Dropout > 0);
    }

    private List<LoraAdapter>? GroupAdapters(IReadOnlyList<IAdaptedProjection> group)
    {
        var adapters = new List<LoraAdapter>(group.Count);
        foreach (var projection in group)
        {
            if (projection is not LoraLinear { Stacked: null, Capture: null, _active: { } name } lora || lora.training != training) return null;
            var adapter = lora._adapters[name];
            if (adapter.UseDora || !adapter.A.requires_grad || !adapter.B.requires_grad) return null;
            if (adapters.Count > 0 && (adapter.Rank != adapters[0].Rank || adapter.Scaling != adapters[0].Scaling || adapter.Dropout != adapters[0].Dropout
                || adapter.A.dtype != adapters[0].A.dtype || adapter.A.device_type != adapters[0].A.device_type
                || adapter.A.device_index != adapters[0].A.device_index)) return null;
            adapters.Add(adapter);
        }
        return adapters;
    }

    /// <summary>x32·m/(1−p) under autograd, with m from <see cref="LoraDropoutMask"/> (as <see cref="LoraGroupFunction"/>
    /// draws it), so that a projection adapting alone (per-example capture, DoRA) sees the masks of the fused path.</summary>
    private static Tensor DroppedAlone(Tensor x, Tensor x32, double p)
    {
        var (_, mask) = LoraDropoutMask.Draw(x.reshape(-1, x.shape[^1]), 1, p);
        return x32 * mask.view(x.shape) * (float)(1.0 / (1.0 - p));
    }

    /// <summary>
    /// The weight this projection has with <paramref name="adapter"/> folded in, computed in fp32 and cast to
    /// <paramref name="dtype"/>: W₀ + s·B·A, or for DoRA (m/n)·(W₀ + s·B·A) with n its row norm.
    /// </summary>
    public Tensor MergedWeight(string adapter, ScalarType dtype)
    {
        if (!_adapters.TryGetValue(adapter, out var a)) throw new ArgumentException($"no adapter '{adapter}' on this projection", nameof(adapter));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var w = Frozen.DequantizedWeight(ScalarType.Float32) + a.DeltaWeight();
        if (a.Magnitude is not null) w = (a.Magnitude / RowNorm(w)).unsqueeze(1) * w;
        return w.to(dtype).MoveToOuterDisposeScope();
    }

    private static Tensor RowNorm(Tensor w) => linalg.vector_norm(w, 2, [1L]);

    /// <summary>The device the frozen base lives on (its adapters live there too).</summary>
    public Device Device => BaseDevice();

    private Device BaseDevice() =>
        base_layer.parameters().Select(p => p.device).Concat(base_layer.buffers().Select(b => b.device)).FirstOrDefault() ?? CPU;

    private static void ValidateName(string name)
    {
        if (!AdapterNamePattern().IsMatch(name) || name == BaseName)
            throw new UserInputException($"adapter name '{name}' is not allowed; use letters, digits, '_' or '-' (and not '{BaseName}')");
    }

    [GeneratedRegex("^[A-Za-z0-9_-]+$")]
    private static partial Regex AdapterNamePattern();
}
