using TorchSharp;
using TorchSharp.Modules;

namespace FinQLoRA.Training.Optimizers;

/// <summary>What every adapter optimizer's <see cref="IAdapterOptimizer.ZeroGrad"/> does.</summary>
internal static class AdapterGradients
{
    /// <summary>Zeroes each gradient in place rather than dropping it, so gradients that are views of one flat buffer
    /// (<see cref="FlatParameterBuffers"/>) stay views.</summary>
    public static void Zero(IReadOnlyList<(string Name, Parameter Parameter)> parameters)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        foreach (var (_, parameter) in parameters) parameter.grad?.zero_();
    }
}
