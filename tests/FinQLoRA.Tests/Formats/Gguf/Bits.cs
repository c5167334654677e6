using FinQLoRA.Runtime;
using TorchSharp;

namespace FinQLoRA.Tests.Formats.Gguf;

/// <summary>Bit-level tensor comparison (distinguishes -0 from 0 and compares dtype and shape too).</summary>
internal static class Bits
{
    public static bool Identical(torch.Tensor a, torch.Tensor b)
    {
        if (a.dtype != b.dtype || !a.shape.SequenceEqual(b.shape)) return false;
        using var ca = a.cpu().contiguous();
        using var cb = b.cpu().contiguous();
        return TensorMemory.AsSpan<byte>(ca).SequenceEqual(TensorMemory.AsSpan<byte>(cb));
    }
}
