using TorchSharp;

namespace FinQLoRA.Formats.Checkpoints;

/// <summary>
/// The dtype a tensor's role needs. Weights, norms and adapter matrices are real numbers: an integer or boolean
/// tensor in their place would be converted silently (garbage weights) or, for BOOL, read with byte values libtorch
/// assumes are 0 or 1. Refusing it names the tensor instead.
/// </summary>
public static class FloatTensors
{
    public static bool IsFloat(torch.ScalarType dtype) =>
        dtype is torch.ScalarType.Float32 or torch.ScalarType.Float16 or torch.ScalarType.BFloat16 or torch.ScalarType.Float64;

    /// <summary>Throws a <see cref="UserInputException"/> naming <paramref name="source"/> and the tensor unless its dtype is floating point.</summary>
    public static void Require(string source, string tensor, torch.ScalarType dtype, string role, string hint)
    {
        if (!IsFloat(dtype))
            throw new UserInputException($"{source}: tensor '{tensor}' is stored as {SafetensorsDTypes.Name(dtype)}, but {role} must be floating point (F32, F16, BF16 or F64); {hint}");
    }
}
