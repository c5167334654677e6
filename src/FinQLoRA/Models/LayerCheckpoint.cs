using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// Gradient checkpointing for one decoder layer (TorchSharp has none built in). Forward runs the layer without
/// building a graph and keeps only its input; backward recomputes the layer with the same random state (so
/// dropout masks match) and back-propagates through the recomputed graph, which accumulates the adapters'
/// gradients, then returns the input's gradient. Activations inside a layer thus live only during its own backward.
/// </summary>
public sealed class LayerCheckpoint : autograd.SingleTensorFunction<LayerCheckpoint>
{
    public override string Name => nameof(LayerCheckpoint);

    // apply() arguments, in order. backward must return exactly one entry per argument (a wrong count aborts the process).
    private const int ArgumentCount = 5; // hidden, cos, sin, mask, layer

    public static Tensor Run(DecoderBlock layer, Tensor hidden, Tensor cos, Tensor sin, Tensor mask) =>
        apply(hidden, cos, sin, mask, layer);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var hidden = (Tensor)vars[0];
        var layer = (DecoderBlock)vars[4];
        ctx.save_for_backward([hidden, (Tensor)vars[1], (Tensor)vars[2], (Tensor)vars[3]]);
        ctx.save_data("layer", layer);
        // the saved mask comes back as another tensor object: whether it is the plain causal one goes along, so the
        // recomputation takes the attention path of the first forward
        ctx.save_data("causal", AttentionMask.IsPlainCausal((Tensor)vars[3]));
        // Kept as bytes, not as a tensor: forward runs inside the caller's dispose scope, which would free a saved
        // tensor before backward (set_rng_state on an empty handle kills the process).
        using (var rng = get_rng_state()) ctx.save_data("rng", rng.data<byte>().ToArray());
        using var noGrad = no_grad();
        using var asRecomputed = CpuMatmulPrecision.CheckpointedForward();
        return layer.Forward(hidden, (Tensor)vars[1], (Tensor)vars[2], (Tensor)vars[3], cache: null);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var saved = ctx.get_saved_variables();
        var layer = (DecoderBlock)ctx.get_data("layer");
        var rngNow = get_rng_state();
        using (var replay = tensor((byte[])ctx.get_data("rng"))) set_rng_state(replay);
        Tensor inputGrad;
        using (enable_grad())
        {
            using var x = saved[0].detach().requires_grad_(true);
            var mask = (bool)ctx.get_data("causal") ? AttentionMask.MarkPlainCausal(saved[3]) : saved[3];
            using var y = layer.Forward(x, saved[1], saved[2], mask, cache: null);
            y.backward([gradOutput]);
            inputGrad = x.grad!.detach().clone();
        }
        set_rng_state(rngNow);
        rngNow.Dispose();
        var grads = new List<Tensor> { inputGrad, null!, null!, null!, null! };
        System.Diagnostics.Debug.Assert(grads.Count == ArgumentCount);
        return grads;
    }
}
