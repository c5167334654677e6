using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// RoPE over whole heads, <c>y = x·cos + P(x)·sin</c> with P(x) = [x₂, x₁] (the halves swapped; the signed sin of
/// <see cref="RotaryEmbedding.CosSin"/> carries rotate_half's minus), as one autograd node. P is its own transpose, so
/// <c>grad_x = g·cos + P(g·sin)</c>: two products, one swap and one sum. Autograd over the composed forward records
/// the two narrows and the cat, and their backwards allocate a zero-filled x-sized gradient per narrow before adding
/// the slices in. The forward is <see cref="RotaryEmbedding.Apply"/>'s ops in its order, so outputs are bit-identical.
/// apply(x, cos, sin): backward returns one entry per argument, null for cos and sin (positions carry no gradient).
/// </summary>
internal sealed class RotaryFunction : autograd.SingleTensorFunction<RotaryFunction>
{
    public override string Name => "FusedRotary";

    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin) => apply(x, cos, sin);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var cos = (Tensor)vars[1];
        var sin = (Tensor)vars[2];
        using var noGrad = no_grad(); // the node is the graph: nothing inside it is recorded
        ctx.save_for_backward([cos, sin]);
        bool kernel = RotaryKernel.Applies(x, cos, sin);
        ctx.save_data("layout", kernel ? (x.shape, x.stride()) : (Array.Empty<long>(), Array.Empty<long>()));
        return kernel ? RotaryKernel.Forward(x, cos, sin) : Rotate(x, cos, sin);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var saved = ctx.get_saved_variables();
        Tensor gradInput;
        var (shape, strides) = ((long[], long[]))ctx.get_data("layout");
        if (shape.Length > 0) return [RotaryKernel.Backward(grad_output, shape, strides, saved[0], saved[1]), null!, null!];
        using (var scope = NewDisposeScope())
            gradInput = (grad_output * saved[0]).add_(Swap(grad_output * saved[1])).MoveToOuterDisposeScope();
        return [gradInput, null!, null!];
    }

    /// <summary>x·cos + P(x)·sin, as <see cref="RotaryEmbedding.Apply"/> computes it for r = d.</summary>
    internal static Tensor Rotate(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        return (x * cos + Swap(x) * sin).MoveToOuterDisposeScope();
    }

    /// <summary>[x₂, x₁]: the two halves of the last dimension swapped.</summary>
    private static Tensor Swap(Tensor x)
    {
        long half = x.shape[^1] / 2;
        return cat([x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
    }
}
