using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>SwiGLU feed-forward: <c>down(silu(gate(x)) ⊙ up(x))</c>.</summary>
public sealed class FeedForward : ProjectionSet
{
    public FeedForward(nn.Module<Tensor, Tensor> gate, nn.Module<Tensor, Tensor> up, nn.Module<Tensor, Tensor> down)
        : base(nameof(FeedForward))
    {
        AddProjection(ProjectionKind.Gate, gate);
        AddProjection(ProjectionKind.Up, up);
        AddProjection(ProjectionKind.Down, down);
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var gateUp = FusedProjections.Forward(x, this[ProjectionKind.Gate], this[ProjectionKind.Up]);
        var hidden = nn.functional.silu(gateUp[0]) * gateUp[1];
        return this[ProjectionKind.Down].forward(hidden).MoveToOuterDisposeScope();
    }
}
