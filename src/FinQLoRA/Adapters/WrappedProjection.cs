using FinQLoRA.Models;

namespace FinQLoRA.Adapters;

/// <summary>One LoRA-wrapped projection of a model: where it sits (layer index, projection name, owning set) and the wrapper.</summary>
public sealed record WrappedProjection(int Layer, ProjectionKind Projection, ProjectionSet Owner, LoraLinear Lora)
{
    /// <summary>HF module path, e.g. <c>model.layers.3.self_attn.q_proj</c>.</summary>
    public string ModulePath => ModelLayout.ModulePath(Layer, Projection);
}
