using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// The linear projections of one block section (attention's q, k, v, o or the MLP's gate, up, down; Phi-3's fused
/// qkv and gate_up) kept as replaceable submodules, so that adapters can wrap a base projection in place
/// (<see cref="Replace"/>) and parameter names stay the Hugging Face ones (<see cref="ModelLayout.ModuleName"/>:
/// <c>q_proj.weight</c>). A projection's bias (Qwen2's q/k/v) is a frozen tensor of the section, added after the
/// projection and any adapter around it: PEFT's LoRA adds its term to the base layer's output, bias included.
/// </summary>
public abstract class ProjectionSet : nn.Module
{
    private readonly Dictionary<ProjectionKind, nn.Module<Tensor, Tensor>> _projections = new();
    private readonly Dictionary<ProjectionKind, Parameter> _biases = new();

    protected ProjectionSet(string name) : base(name) { }

    protected void AddProjection(ProjectionKind kind, nn.Module<Tensor, Tensor> module, Tensor? bias = null)
    {
        _projections[kind] = module;
        register_module(ModelLayout.ModuleName(kind), module);
        if (bias is null) return;
        var p = new Parameter(bias, requires_grad: false);
        _biases[kind] = p;
        register_parameter(ModelLayout.ModuleName(kind) + "_bias", p);
    }

    public IReadOnlyDictionary<ProjectionKind, nn.Module<Tensor, Tensor>> Projections => _projections;

    public nn.Module<Tensor, Tensor> this[ProjectionKind kind] => _projections[kind];

    public bool Has(ProjectionKind kind) => _projections.ContainsKey(kind);

    /// <summary>The bias of a projection as the checkpoint stores it, or null.</summary>
    public Tensor? Bias(ProjectionKind kind) => _biases.GetValueOrDefault(kind);

    /// <summary>A projection's output plus its bias, if it has one.</summary>
    protected Tensor WithBias(ProjectionKind kind, Tensor y) => _biases.TryGetValue(kind, out var b) ? y + b : y;

    /// <summary>The projection applied to x, bias included.</summary>
    protected Tensor Project(ProjectionKind kind, Tensor x) => WithBias(kind, this[kind].forward(x));

    /// <summary>Swaps a projection for another module (e.g. a LoRA wrapper around it).</summary>
    public void Replace(ProjectionKind kind, nn.Module<Tensor, Tensor> module)
    {
        if (!_projections.ContainsKey(kind)) throw new ArgumentException($"no projection {ModelLayout.ModuleName(kind)} in {GetName()}");
        _projections[kind] = module;
        string name = ModelLayout.ModuleName(kind);
        register_module(name, null!); // TorchSharp refuses to register a name twice; null unregisters the old module
        register_module(name, module);
    }
}
