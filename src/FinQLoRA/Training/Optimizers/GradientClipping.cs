using TorchSharp;
using TorchSharp.Modules;

namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// Global-norm gradient clipping as <c>torch.nn.utils.clip_grad_norm_</c> (norm_type 2, error_if_nonfinite False)
/// computes it, op for op:
/// <code>
/// total = ‖(‖g₁‖₂, …, ‖gₖ‖₂)‖₂                over parameters that have a gradient
/// coef  = clamp(max_norm / (total + 1e-6), max = 1)   (Python's scalar/tensor is reciprocal(tensor)·scalar)
/// gᵢ   *= coef                                 (always, even when coef is 1)
/// </code>
/// A non-finite total makes coef 0 or NaN and so spoils the gradients, as in PyTorch: check the returned norm (or use
/// <see cref="GradientFiniteCheck"/>) before stepping.
/// </summary>
public static class GradientClipping
{
    /// <summary>Clips in place and returns the total norm before clipping (0 when no parameter has a gradient).</summary>
    public static double ClipGradNorm(IEnumerable<Parameter> parameters, double maxNorm)
    {
        if (!(maxNorm > 0)) throw new UserInputException($"max gradient norm = {maxNorm} must be > 0; use e.g. 1.0 (or turn clipping off)");
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var grads = parameters.Select(p => p.grad).OfType<torch.Tensor>().ToList();
        if (grads.Count == 0) return 0.0;

        torch.Tensor total = torch.linalg.vector_norm(torch.stack(grads.Select(g => torch.linalg.vector_norm(g)).ToArray()));
        torch.Tensor coef = total.add(1e-6).reciprocal().mul(maxNorm).clamp_max(1.0);
        foreach (var g in grads) g.mul_(coef);
        return total.item<float>();
    }
}
