using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>A projection that wraps a frozen base and adds its own term to the base's output (a LoRA adapter), so
/// that a layer can compute several bases in one matmul (<see cref="FusedProjections"/>) and let each add its term.</summary>
public interface IAdaptedProjection
{
    nn.Module<Tensor, Tensor> BaseLayer { get; }

    /// <summary>This projection's output given its base's output for the same input: forward(x) = Adapt(x, base(x)).</summary>
    Tensor Adapt(Tensor x, Tensor baseOutput);

    /// <summary>Whether <see cref="AdaptTogether"/> can compute <paramref name="group"/> (projections of the same x, this
    /// one first) as one (one autograd node for the group's adapters in training); where not, each adapts alone.</summary>
    bool CanAdaptTogether(IReadOnlyList<IAdaptedProjection> group) => false;

    /// <summary>The outputs of <paramref name="group"/> from their bases' outputs for x (<paramref name="bases"/>: one
    /// [.., ΣOut] tensor side by side, or one per projection), where <see cref="CanAdaptTogether"/> said so.</summary>
    Tensor[] AdaptTogether(Tensor x, IReadOnlyList<Tensor> bases, IReadOnlyList<IAdaptedProjection> group) =>
        throw new NotSupportedException($"{GetType().Name} adapts each projection alone");
}
