using TorchSharp;

namespace FinQLoRA.Distributed;

/// <summary>Argument checks shared by the communicators, so every backend rejects the same mistakes the same way
/// (MPI itself would abort the whole job on a size mismatch).</summary>
internal static class CollectiveShapes
{
    public static void CheckAllGather(torch.Tensor input, torch.Tensor output, int size)
    {
        if (input.dtype != output.dtype)
            throw new ArgumentException($"all-gather output dtype {output.dtype} differs from input dtype {input.dtype}", nameof(output));
        if (output.numel() != input.numel() * size)
            throw new ArgumentException($"all-gather output has {output.numel()} elements; expected {size} ranks × {input.numel()} = {input.numel() * size}", nameof(output));
    }

    public static void CheckAllToAll(torch.Tensor input, torch.Tensor output, int size)
    {
        if (input.dtype != output.dtype)
            throw new ArgumentException($"all-to-all output dtype {output.dtype} differs from input dtype {input.dtype}", nameof(output));
        if (output.numel() != input.numel())
            throw new ArgumentException($"all-to-all output has {output.numel()} elements; expected {input.numel()} like the input", nameof(output));
        if (input.numel() % size != 0)
            throw new ArgumentException($"all-to-all input of {input.numel()} elements does not split into {size} equal chunks", nameof(input));
    }
}
