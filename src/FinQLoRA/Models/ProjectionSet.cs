using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// The linear projections of one block section (attention's q, k, v, o or the MLP's gate, up, down) kept as
/// replaceable submodules, so that adapters can wrap a base projection in place (<see cref="Replace"/>) and
/// parameter names stay the Hugging Face ones (<see cref="ModelLayout.ModuleName"/>: <c>q_proj.weight</c>).
/// </summary>
public abstract class ProjectionSet : nn.Module
{
    private readonly Dictionary<ProjectionKind, nn.Module<Tensor, Tensor>> _projections = new();

    protected ProjectionSet(string name) : base(name) { }

    protected void AddProjection(ProjectionKind kind, nn.Module<Tensor, Tensor> module)
    {
        _projections[kind] = module;
        register_module(ModelLayout.ModuleName(kind), module);
    }

    public IReadOnlyDictionary<ProjectionKind, nn.Module<Tensor, Tensor>> Projections => _projections;

    public nn.Module<Tensor, Tensor> this[ProjectionKind kind] => _projections[kind];

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
