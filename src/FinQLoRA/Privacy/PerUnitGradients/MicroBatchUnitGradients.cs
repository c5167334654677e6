using static TorchSharp.torch;

namespace FinQLoRA.Privacy.PerUnitGradients;

/// <summary>One micro-batch's per-unit gradients: for each trained parameter [K, …parameter shape], row k belonging to
/// <see cref="Units"/>[k]; with the micro-batch's loss (Σ over examples of their mean token loss) and counts. Owns its tensors.</summary>
internal sealed record MicroBatchUnitGradients(int[] Units, Tensor[] Gradients, double LossSum, int Tokens, int Examples) : IDisposable
{
    public void Dispose()
    {
        foreach (var g in Gradients) g.Dispose();
    }
}
