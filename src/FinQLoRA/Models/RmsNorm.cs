using FinQLoRA.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>RMSNorm as Hugging Face's LlamaRMSNorm, normalise in fp32, cast back, then scale:
/// <c>w · (x · rsqrt(mean(x²) + eps)).to(dtype)</c>; or with an offset as GemmaRMSNorm, scale in fp32, then cast:
/// <c>((x · rsqrt(mean(x²) + eps)) · (offset + w)).to(dtype)</c>. <see cref="Weight"/> is w as the checkpoint stores it.</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double _eps;
    private readonly double _offset;

    public RmsNorm(Tensor weight, double eps, double offset = 0) : base(nameof(RmsNorm))
    {
        this.weight = new Parameter(weight, requires_grad: false);
        _eps = eps;
        _offset = offset;
        RegisterComponents();
    }

    public Parameter Weight => weight;
    public double Eps => _eps;
    public double Offset => _offset;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        if (_offset != 0)
        {
            var xf = x.to(ScalarType.Float32);
            var nf = xf * rsqrt(xf.pow(2).mean([-1L], keepdim: true) + _eps);
            return (nf * (weight.to(ScalarType.Float32) + _offset)).to(x.dtype).MoveToOuterDisposeScope();
        }
        if (x.dtype == ScalarType.Float32 && weight.dtype == ScalarType.Float32)
        {
            // fp32 compute: the casts below are identities; skipping them is the same arithmetic in fewer ops
            var n = x * rsqrt(x.pow(2).mean([-1L], keepdim: true) + _eps);
            return (weight * n).MoveToOuterDisposeScope();
        }
        if (TrainingFusions.Enabled && x.requires_grad && is_grad_enabled() && !weight.requires_grad)
            return RmsNormFunction.Apply(x, weight, _eps).MoveToOuterDisposeScope();
        // a checkpointed layer's first forward (training, no graph): the arithmetic its recomputation will do
        if (TrainingFusions.Enabled && training && !is_grad_enabled() && RmsNormKernel.Applies(x, weight))
            return RmsNormKernel.Forward(x, weight, _eps).MoveToOuterDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var normed = x32 * rsqrt(x32.pow(2).mean([-1L], keepdim: true) + _eps);
        return (weight * normed.to(x.dtype)).to(x.dtype).MoveToOuterDisposeScope();
    }
}
