using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>A projection that wraps a frozen base and adds its own term to the base's output (a LoRA adapter), so
/// that a layer can compute several bases in one matmul (<see cref="FusedProjections"/>) and let each add its term.</summary>
public interface IAdaptedProjection
{
    nn.Module<Tensor, Tensor> BaseLayer { get; }

    /// <summary>This projection's output given its base's output for the same input: forward(x) = Adapt(x, base(x)).</summary>
    Tensor Adapt(Tensor x, Tensor baseOutput);
}
