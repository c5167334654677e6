using FinQLoRA.Training.Optimizers;
using TorchSharp;
using TorchSharp.Modules;

namespace FinQLoRA.Tests.Training;

/// <summary>
/// The per-tensor AdamW that <see cref="AdamWOptimizer"/> used before its flat-buffer step, kept verbatim as the
/// reference the fused step must match bit for bit.
/// </summary>
internal sealed class ReferenceAdamW(IReadOnlyList<Parameter> parameters, AdamWOptions options) : IDisposable
{
    private readonly torch.Tensor[] _expAvg = parameters.Select(p => torch.zeros_like(p).DetachFromDisposeScope()).ToArray();
    private readonly torch.Tensor[] _expAvgSq = parameters.Select(p => torch.zeros_like(p).DetachFromDisposeScope()).ToArray();
    private readonly long[] _steps = new long[parameters.Count];

    public void Step(double lr)
    {
        double beta1 = options.Beta1, beta2 = options.Beta2;
        using var noGrad = torch.no_grad();
        for (int i = 0; i < parameters.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var parameter = parameters[i];
            torch.Tensor? grad = parameter.grad;
            if (grad is null) continue;

            long step = ++_steps[i];
            if (options.WeightDecay != 0) parameter.mul_(1 - lr * options.WeightDecay);
            _expAvg[i].lerp_(grad, 1 - beta1);
            _expAvgSq[i].mul_(beta2).addcmul_(grad, grad, value: 1 - beta2);

            double biasCorrection1 = 1 - Math.Pow(beta1, step);
            double biasCorrection2 = 1 - Math.Pow(beta2, step);
            double stepSize = lr / biasCorrection1;
            double biasCorrection2Sqrt = Math.Pow(biasCorrection2, 0.5);
            torch.Tensor denom = _expAvgSq[i].sqrt().div_(biasCorrection2Sqrt).add_(options.Eps);
            parameter.addcdiv_(_expAvg[i], denom, value: -stepSize);
        }
    }

    public torch.Tensor ExpAvg(int i) => _expAvg[i];

    public torch.Tensor ExpAvgSq(int i) => _expAvgSq[i];

    public void Dispose()
    {
        foreach (var t in _expAvg) t.Dispose();
        foreach (var t in _expAvgSq) t.Dispose();
    }
}
