using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// The named linear projections of one block (q_proj, k_proj, …) kept as replaceable submodules, so that
/// adapters can wrap a base projection in place (<see cref="Replace"/>) and parameter names stay the
/// Hugging Face ones (<c>self_attn.q_proj.weight</c>).
/// </summary>
public abstract class ProjectionSet : nn.Module
{
    private readonly Dictionary<string, nn.Module<Tensor, Tensor>> _projections = new();

    protected ProjectionSet(string name) : base(name) { }

    protected void AddProjection(string name, nn.Module<Tensor, Tensor> module)
    {
        _projections[name] = module;
        register_module(name, module);
    }

    public IReadOnlyDictionary<string, nn.Module<Tensor, Tensor>> Projections => _projections;

    public nn.Module<Tensor, Tensor> this[string name] => _projections[name];

    /// <summary>Swaps a projection for another module (e.g. a LoRA wrapper around it).</summary>
    public void Replace(string name, nn.Module<Tensor, Tensor> module)
    {
        if (!_projections.ContainsKey(name)) throw new ArgumentException($"no projection '{name}' in {GetName()}");
        _projections[name] = module;
        register_module(name, null!); // TorchSharp refuses to register a name twice; null unregisters the old module
        register_module(name, module);
    }
}
