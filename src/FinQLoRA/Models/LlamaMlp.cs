using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>SwiGLU feed-forward: <c>down(silu(gate(x)) ⊙ up(x))</c>.</summary>
public sealed class LlamaMlp : ProjectionSet
{
    public LlamaMlp(nn.Module<Tensor, Tensor> gate, nn.Module<Tensor, Tensor> up, nn.Module<Tensor, Tensor> down)
        : base(nameof(LlamaMlp))
    {
        AddProjection("gate_proj", gate);
        AddProjection("up_proj", up);
        AddProjection("down_proj", down);
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var hidden = nn.functional.silu(this["gate_proj"].forward(x)) * this["up_proj"].forward(x);
        return this["down_proj"].forward(hidden).MoveToOuterDisposeScope();
    }
}
