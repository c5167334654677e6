using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// A projection's output rows [B, T, n·d] as attention's heads [B, n·G, T, d] in one autograd node: RoPE over whole
/// heads where <see cref="Heads.Rotate"/> (q, k), and each head repeated for the G query heads of its group
/// (grouped-query attention's k and v; G = 1 for q). It stands for the composed reshape, transpose,
/// <see cref="RotaryFunction"/> and <c>repeat_interleave(G, dim: 1)</c>, forward and backward, with the same outputs
/// bit for bit (<see cref="AttentionHeadsKernel"/>). Training only (issue 26): bf16 rows on the CPU, the fused step.
/// apply(rows, cos, sin, Heads): backward returns one entry per argument, null for cos, sin and the record.
/// </summary>
internal sealed class AttentionHeadsFunction : autograd.SingleTensorFunction<AttentionHeadsFunction>
{
    /// <summary>The head width d, the repeat G of each head and whether RoPE applies.</summary>
    internal sealed record Heads(int HeadDim, int Groups, bool Rotate);

    public override string Name => "AttentionHeads";

    public static Tensor Apply(Tensor rows, Tensor cos, Tensor sin, Heads heads) => apply(rows, cos, sin, heads);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var rows = (Tensor)vars[0];
        var cos = (Tensor)vars[1];
        var sin = (Tensor)vars[2];
        var heads = (Heads)vars[3];
        using var noGrad = no_grad(); // the node is the graph: nothing inside it is recorded
        ctx.save_for_backward([cos, sin]);
        ctx.save_data("heads", heads);
        return AttentionHeadsKernel.Forward(rows, cos, sin, heads.HeadDim, heads.Groups, heads.Rotate);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var saved = ctx.get_saved_variables();
        var heads = (Heads)ctx.get_data("heads");
        var gradRows = AttentionHeadsKernel.Backward(grad_output, saved[0], saved[1], heads.HeadDim, heads.Groups, heads.Rotate);
        return [gradRows, null!, null!, null!];
    }
}
