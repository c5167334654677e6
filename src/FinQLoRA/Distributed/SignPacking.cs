using TorchSharp;

namespace FinQLoRA.Distributed;

/// <summary>
/// One-bit sign codes, 8 per byte, as 1-bit compressed all-reduce sends them.
/// Bit order: element <c>8·j + k</c> is bit <c>7 − k</c> of byte <c>j</c> (most significant bit first), the
/// default order of <c>numpy.packbits</c>/<c>cupy.packbits</c> that DeepSpeed uses. A set bit means "non-negative"
/// (sign(0) = +1), a clear bit means "negative". Example: signs + − + − + + − + pack to 0b1010_1101 = 0xAD.
/// Pure tensor operations, so it runs on the tensor's device (CPU or GPU).
/// </summary>
public static class SignPacking
{
    private static readonly byte[] BitWeights = [128, 64, 32, 16, 8, 4, 2, 1];

    /// <summary>Packs a bool tensor of n elements (n a multiple of 8; true = non-negative) into n/8 bytes.</summary>
    public static torch.Tensor Pack(torch.Tensor nonNegative)
    {
        if (nonNegative.dtype != torch.ScalarType.Bool) throw new ArgumentException($"expected a bool tensor, got {nonNegative.dtype}", nameof(nonNegative));
        long n = nonNegative.numel();
        if (n % 8 != 0) throw new ArgumentException($"{n} signs do not fill whole bytes; pad to a multiple of 8", nameof(nonNegative));
        using var scope = torch.NewDisposeScope();
        using var weights = torch.tensor(BitWeights, torch.ScalarType.Byte, nonNegative.device);
        // bits (n/8, 8) × weights → sum per row fits a byte (at most 255).
        return (nonNegative.reshape(n / 8, 8).to(torch.ScalarType.Byte) * weights).sum(1).to(torch.ScalarType.Byte).MoveToOuterDisposeScope();
    }

    /// <summary>Unpacks m bytes into 8·m bools (true = non-negative).</summary>
    public static torch.Tensor Unpack(torch.Tensor packed)
    {
        if (packed.dtype != torch.ScalarType.Byte) throw new ArgumentException($"expected a uint8 tensor, got {packed.dtype}", nameof(packed));
        using var scope = torch.NewDisposeScope();
        using var weights = torch.tensor(BitWeights, torch.ScalarType.Byte, packed.device);
        return packed.reshape(-1, 1).bitwise_and(weights).ne(0).reshape(-1).MoveToOuterDisposeScope();
    }

    /// <summary>±1.0f for each sign (true → +1, false → −1).</summary>
    public static torch.Tensor ToPlusMinusOne(torch.Tensor nonNegative) =>
        nonNegative.to(torch.ScalarType.Float32).mul_(2).sub_(1);
}
