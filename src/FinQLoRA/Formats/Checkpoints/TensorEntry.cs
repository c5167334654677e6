using TorchSharp;

namespace FinQLoRA.Formats.Checkpoints;

/// <summary>What a checkpoint says about one tensor before it is read: its stored type and shape.</summary>
public sealed record TensorEntry(string Name, torch.ScalarType DType, long[] Shape)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}
