using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters.GradientCapture;

/// <summary>
/// The identity whose backward hands the incoming gradient to a callback before passing it on unchanged: how
/// per-example DP-SGD reads dL/du, dL/dz and DoRA's per-token dL/dscale inside <see cref="LoraLinear.Adapt"/>
/// without a second backward (TorchSharp has no tensor hooks). The callback receives a detached copy it owns.
/// <para>apply(x, Action&lt;Tensor&gt; onGradient): backward returns one entry per argument (<see cref="ArgumentCount"/>),
/// null for the callback — a wrong count aborts the process.</para>
/// </summary>
internal sealed class GradientTapFunction : autograd.SingleTensorFunction<GradientTapFunction>
{
    /// <summary>Arguments of <c>apply</c>: x, the gradient callback.</summary>
    public const int ArgumentCount = 2;

    public override string Name => "GradientTap";

    public static Tensor Apply(Tensor x, Action<Tensor> onGradient) => apply(x, onGradient);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        ctx.save_data("onGradient", vars[1]);
        // a fresh tensor: autograd attaches this node to the output, and an alias of the input would carry the input's history
        return ((Tensor)vars[0]).clone();
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var onGradient = (Action<Tensor>)ctx.get_data("onGradient");
        // backward may run on an autograd worker thread (CUDA) outside the caller's dispose scope: the copy is owned by
        // the callback's receiver, which disposes it
        var copy = grad_output.detach().clone();
        copy.DetachFromDisposeScope();
        onGradient(copy);
        var grads = new List<Tensor>(ArgumentCount) { grad_output.detach(), null! };
        return grads;
    }
}
