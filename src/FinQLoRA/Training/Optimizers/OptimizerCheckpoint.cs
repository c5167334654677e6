using TorchSharp;

namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// A checkpoint of an <see cref="IAdapterOptimizer"/>: named tensors (keys <c>"{parameter}.{buffer}"</c>, e.g.
/// <c>"layers.0.q_proj.lora_A.exp_avg"</c>) and a small JSON-serialisable record of the scalars (step counts,
/// intervals, counters). Saving both and loading them into a fresh optimizer over the same parameter values continues
/// the run bit-identically.
/// </summary>
public sealed record OptimizerCheckpoint(IReadOnlyDictionary<string, torch.Tensor> Tensors, OptimizerScalarState Scalars) : IDisposable
{
    public void Dispose()
    {
        foreach (var tensor in Tensors.Values) tensor.Dispose();
    }
}
