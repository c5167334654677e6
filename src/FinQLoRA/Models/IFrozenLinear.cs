using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// A frozen base projection of the model, dense or quantized. Adapters wrap it; the merge and export code
/// reads its weight back through <see cref="DequantizedWeight"/>.
/// </summary>
public interface IFrozenLinear
{
    long InFeatures { get; }
    long OutFeatures { get; }
    /// <summary>Bytes the stored weight occupies (packed bytes plus constants for quantized weights).</summary>
    long StorageBytes { get; }
    /// <summary>The full-precision weight [out, in] in <paramref name="dtype"/>, newly made (quantized) or a view (dense).</summary>
    Tensor DequantizedWeight(ScalarType dtype);

    /// <summary>Whether <see cref="WriteWeight"/> works for inputs of <paramref name="dtype"/>: a fused CPU matmul
    /// (<see cref="FusedProjections"/>) writes the weights of its group row after row into one buffer.</summary>
    bool CanWriteWeight(ScalarType dtype);

    /// <summary>Writes the weight as a matmul with <paramref name="dtype"/> inputs uses it (its values in that dtype) into
    /// a contiguous CPU tensor [out, in] of <paramref name="dtype"/> or, for a widened matmul, fp32, without allocating.</summary>
    void WriteWeight(Tensor destination, ScalarType dtype);

    /// <summary>What <see cref="WriteWeight"/> writes, at <paramref name="destination"/>: the first element of contiguous
    /// [out, in] CPU memory of <paramref name="destinationDtype"/> (<paramref name="dtype"/>, or fp32 for a widened matmul).
    /// Returns false where this projection cannot (the caller then writes through a tensor): a training matmul node fills
    /// its group's buffer this way without a slice tensor (an ATen op) per projection.</summary>
    bool TryWriteWeightAt(nint destination, ScalarType destinationDtype, ScalarType dtype) => false;

    /// <summary>Whether this projection multiplies <paramref name="x"/> faster by itself than inside a fused group
    /// (<see cref="FusedProjections"/>): a quantized weight whose fused gemv takes x.</summary>
    bool MultipliesAlone(Tensor x) => false;
}
