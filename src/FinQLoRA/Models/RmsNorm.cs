using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>RMSNorm as Hugging Face's LlamaRMSNorm: normalise in fp32, cast back, then scale:
/// <c>w · (x · rsqrt(mean(x²) + eps)).to(dtype)</c>.</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double _eps;

    public RmsNorm(Tensor weight, double eps) : base(nameof(RmsNorm))
    {
        this.weight = new Parameter(weight, requires_grad: false);
        _eps = eps;
        RegisterComponents();
    }

    public Parameter Weight => weight;
    public double Eps => _eps;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        if (x.dtype == ScalarType.Float32 && weight.dtype == ScalarType.Float32)
        {
            // fp32 compute: the casts below are identities; skipping them is the same arithmetic in fewer ops
            var n = x * rsqrt(x.pow(2).mean([-1L], keepdim: true) + _eps);
            return (weight * n).MoveToOuterDisposeScope();
        }
        var x32 = x.to(ScalarType.Float32);
        var normed = x32 * rsqrt(x32.pow(2).mean([-1L], keepdim: true) + _eps);
        return (weight * normed.to(x.dtype)).to(x.dtype).MoveToOuterDisposeScope();
    }
}
