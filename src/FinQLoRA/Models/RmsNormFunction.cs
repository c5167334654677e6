using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// Hugging Face's LlamaRMSNorm for a 16-bit x and a frozen weight w, <c>y = w · (x · r).to(dtype)</c> with
/// <c>r = rsqrt(mean(x²) + eps)</c> in fp32, as one autograd node. Autograd over the composed forward keeps an fp32
/// copy of x and records eight nodes (two casts, pow, mean, add, rsqrt, two products) whose backwards run a dozen
/// more ops; this node saves x as it came (r is recomputed from it), and its backward is the closed form
/// <c>grad_x = r · (ĝ − n · mean(ĝ · n))</c>, with n = x·r and ĝ = (g · w) in fp32.
/// The forward is the same ops in the same order as <see cref="RmsNorm.forward"/>'s, so outputs are bit-identical.
/// apply(x, w, eps): backward returns one entry per argument, null for the frozen w and eps.
/// </summary>
internal sealed class RmsNormFunction : autograd.SingleTensorFunction<RmsNormFunction>
{
    public override string Name => "FusedRmsNorm";

    public static Tensor Apply(Tensor x, Tensor weight, double eps) => apply(x, weight, eps);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var weight = (Tensor)vars[1];
        double eps = (double)vars[2];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad(); // the node is the graph: nothing inside it is recorded
        ctx.save_for_backward([x, weight]);
        ctx.save_data("eps", eps);
        if (RmsNormKernel.Applies(x, weight)) return RmsNormKernel.Forward(x, weight, eps).MoveToOuterDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var r = rsqrt(x32.pow(2).mean([-1L], keepdim: true) + eps);
        var y = weight * (x32 * r).to(x.dtype);
        // TorchSharp hands back saved inputs and outputs only (an intermediate comes back null), so backward computes r
        // again from x: three ops on [.., hidden], the same bits
        return (y.dtype == x.dtype ? y : y.to(x.dtype)).MoveToOuterDisposeScope();
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var saved = ctx.get_saved_variables();
        Tensor x = saved[0], weight = saved[1];
        double eps = (double)ctx.get_data("eps");
        Tensor gradInput;
        if (RmsNormKernel.Applies(x, weight)) return [RmsNormKernel.Backward(grad_output, x, weight, eps), null!, null!];
        using (var scope = NewDisposeScope())
        {
            var x32 = x.to(ScalarType.Float32);
            var r = rsqrt(x32.pow(2).mean([-1L], keepdim: true) + eps);
            var g = (grad_output * weight).to(ScalarType.Float32); // the product's gradient in x's dtype, then through the cast
            var n = x32.mul_(r);
            var dot = (g * n).mean([-1L], keepdim: true);
            gradInput = g.sub_(n.mul_(dot)).mul_(r).to(x.dtype).MoveToOuterDisposeScope();
        }
        return [gradInput, null!, null!];
    }
}
