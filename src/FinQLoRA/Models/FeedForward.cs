using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>Gated feed-forward: <c>down(act(gate(x)) ⊙ up(x))</c> with SiLU (SwiGLU) or tanh-GELU (GeGLU, Gemma);
/// gate and up as two projections, or as Phi-3's one gate_up projection whose first half is the gate.</summary>
public sealed class FeedForward : ProjectionSet
{
    private readonly Activation _activation;

    /// <param name="projections">the family's MLP projections (gate, up, down; or gate_up, down) with their biases, if any</param>
    public FeedForward(Activation activation, IEnumerable<(ProjectionKind Kind, nn.Module<Tensor, Tensor> Module, Tensor? Bias)> projections)
        : base(nameof(FeedForward))
    {
        _activation = activation;
        foreach (var (kind, module, bias) in projections) AddProjection(kind, module, bias);
    }

    public Activation Activation => _activation;

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor gate, up;
        if (Has(ProjectionKind.GateUp))
        {
            var both = Project(ProjectionKind.GateUp, x);
            long half = both.shape[^1] / 2;
            (gate, up) = (both.narrow(-1, 0, half), both.narrow(-1, half, half));
        }
        else
        {
            var gateUp = FusedProjections.Forward(x, this[ProjectionKind.Gate], this[ProjectionKind.Up]);
            (gate, up) = (WithBias(ProjectionKind.Gate, gateUp[0]), WithBias(ProjectionKind.Up, gateUp[1]));
        }
        var activated = _activation == Activation.Silu ? nn.functional.silu(gate) : GeluTanh(gate);
        return Project(ProjectionKind.Down, activated * up).MoveToOuterDisposeScope();
    }

    /// <summary>GELU's tanh approximation (PyTorch's <c>gelu(approximate="tanh")</c>):
    /// <c>½x(1 + tanh(√(2/π)(x + 0.044715x³)))</c>.</summary>
    private static Tensor GeluTanh(Tensor x)
    {
        using var scope = NewDisposeScope();
        var inner = (x + x.pow(3) * 0.044715) * Math.Sqrt(2.0 / Math.PI);
        return (x * 0.5 * (inner.tanh() + 1)).MoveToOuterDisposeScope();
    }
}
