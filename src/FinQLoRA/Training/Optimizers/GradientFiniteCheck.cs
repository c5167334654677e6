using TorchSharp;
using TorchSharp.Modules;

namespace FinQLoRA.Training.Optimizers;

/// <summary>Finds gradients holding NaN or ±inf, so the trainer can skip the step and name the culprit.</summary>
public static class GradientFiniteCheck
{
    /// <summary>The names of parameters whose gradient has a non-finite value, in order (empty when all are finite).</summary>
    public static IReadOnlyList<string> NonFiniteGradients(IEnumerable<(string Name, Parameter Parameter)> parameters)
    {
        var bad = new List<string>();
        using var noGrad = torch.no_grad();
        foreach (var (name, parameter) in parameters)
        {
            using var scope = torch.NewDisposeScope();
            torch.Tensor? grad = parameter.grad;
            if (grad is not null && !torch.isfinite(grad).all().item<bool>()) bad.Add(name);
        }
        return bad;
    }

    /// <summary>True when every existing gradient is finite.</summary>
    public static bool AllFinite(IEnumerable<(string Name, Parameter Parameter)> parameters) =>
        NonFiniteGradients(parameters).Count == 0;
}
