using FinQLoRA.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>
/// The autograd node of <see cref="ChunkedCrossEntropy"/>: forward computes the summed loss and, chunk by chunk, the
/// gradient w.r.t. x that autograd would compute for <c>cross_entropy(linear(x, W).to(float32), t, sum)</c> with an
/// incoming gradient of 1: grad_logits = softmax − onehot in fp32 (log_softmax's backward, exp(log_softmax) plus the
/// NLL's −1 at the target), cast to x's dtype (the cast's backward), times W (linear's backward). Only grad_x [N, hidden]
/// is saved; backward scales it by the incoming scalar. W is frozen and targets are integers, so neither gets a gradient.
/// With row weights w the loss is Σ w·CE and each row's grad_logits is scaled by its w.
/// <para>apply(x, weight, targets, long rowsPerChunk, Action&lt;long&gt;? onChunk, rowWeights or <see cref="NoWeights"/>): backward returns one entry per argument
/// (<see cref="ArgumentCount"/>), null for all but x — a wrong count aborts the process.</para>
/// </summary>
internal sealed class ChunkedCrossEntropyFunction : autograd.SingleTensorFunction<ChunkedCrossEntropyFunction>
{
    /// <summary>Arguments of <c>apply</c>: x, weight, targets, rows per chunk, chunk observer, row weights.</summary>
    public const int ArgumentCount = 6;

    /// <summary>Stands for "no row weights" among apply's arguments (a plain sum).</summary>
    private static readonly object NoWeights = new();

    public override string Name => "ChunkedCrossEntropy";

    public static Tensor Apply(Tensor x, Tensor weight, Tensor targets, long rowsPerChunk, Action<long>? onChunk, Tensor? rowWeights = null) =>
        apply(x, weight, targets, rowsPerChunk, onChunk ?? NoObserver, (object?)rowWeights ?? NoWeights);

    private static readonly Action<long> NoObserver = _ => { };

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var weight = (Tensor)vars[1];
        var targets = (Tensor)vars[2];
        long rowsPerChunk = (long)vars[3];
        var onChunk = (Action<long>)vars[4];
        var rowWeights = vars[5] as Tensor;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var total = zeros([], ScalarType.Float32, x.device);
        var gradX = empty_like(x);
        ChunkedCrossEntropy.ForEachChunk(x.shape[0], rowsPerChunk, onChunk, (start, rows) =>
        {
            using var chunkScope = NewDisposeScope();
            var wanted = targets.narrow(0, start, rows);
            // cross_entropy is nll_loss(log_softmax): the same two ops, so the chunk's loss is the full computation's
            var logProbs = nn.functional.log_softmax(ChunkedCrossEntropy.Logits(x.narrow(0, start, rows), weight), 1);
            var w = rowWeights?.narrow(0, start, rows);
            total.add_(w is null
                ? nn.functional.nll_loss(logProbs, wanted, reduction: nn.Reduction.Sum)
                : (nn.functional.nll_loss(logProbs, wanted, reduction: nn.Reduction.None) * w).sum());
            var gradLogits = logProbs.exp_().scatter_add_(1, wanted.unsqueeze(1), full(rows, 1, -1f, ScalarType.Float32, x.device));
            if (w is not null) gradLogits.mul_(w.unsqueeze(1));
            gradX.narrow(0, start, rows).copy_(DenseMatmulFunction.InputGradient(gradLogits.to(x.dtype), weight));
        });
        // TorchSharp commits saved tensors to native saved variables after forward returns, so grad_x must outlive
        // this scope (the caller's scope frees the managed handle later; the saved variable keeps its own reference).
        ctx.save_for_backward([gradX.MoveToOuterDisposeScope()]);
        return total.MoveToOuterDisposeScope();
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var gradX = ctx.get_saved_variables()[0];
        Tensor gradInput;
        using (var scope = NewDisposeScope())
        {
            // the scale in fp32, as autograd applies it to the fp32 logits' gradient before the cast to x's dtype
            var scaled = gradX.to(ScalarType.Float32).mul(grad_output.to(ScalarType.Float32));
            gradInput = (scaled.dtype == gradX.dtype ? scaled : scaled.to(gradX.dtype)).MoveToOuterDisposeScope();
        }
        var grads = new List<Tensor>(ArgumentCount) { gradInput, null!, null!, null!, null!, null! };
        return grads;
    }
}
