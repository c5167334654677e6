using TorchSharp.Modules;

namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// An optimizer over the trainable (fp32) adapter parameters, each known by a stable name so that its state can be
/// checkpointed and matched up again on resume. The learning rate is passed to every <see cref="Step"/> (the schedule
/// lives outside the optimizer), so a resumed run reproduces the uninterrupted one bit for bit.
/// </summary>
public interface IAdapterOptimizer : IDisposable
{
    /// <summary>The parameters this optimizer updates, in the order given at construction.</summary>
    IReadOnlyList<(string Name, Parameter Parameter)> Parameters { get; }

    /// <summary>
    /// True when <see cref="Step"/> does its own gradient communication across data-parallel ranks (0/1 Adam), so the
    /// trainer must not all-reduce gradients itself; false when the trainer must hand it already-averaged gradients.
    /// </summary>
    bool CommunicatesGradients { get; }

    /// <summary>One update of every parameter from its <c>.grad</c>, with learning rate <paramref name="lr"/>.</summary>
    void Step(double lr);

    /// <summary>Zeroes every parameter's gradient in place (buffers stay allocated).</summary>
    void ZeroGrad();

    /// <summary>A copy of the whole optimizer state; the caller owns (and disposes) the returned tensors.</summary>
    OptimizerCheckpoint StateDict();

    /// <summary>Replaces the state by <paramref name="state"/> (copied; the caller keeps ownership of its tensors).</summary>
    void LoadStateDict(OptimizerCheckpoint state);
}
