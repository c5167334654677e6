using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization;

/// <summary>Bit patterns of tensors, for exact comparisons (NaN-safe, -0.0 ≠ +0.0).</summary>
internal static class TensorBits
{
    public static ushort[] Bf16(Tensor t)
    {
        using var scope = NewDisposeScope();
        Tensor c = t.to(ScalarType.BFloat16).cpu().contiguous().reshape(-1);
        return c.data<BFloat16>().ToArray().Select(Raw).ToArray();
    }

    private static ushort Raw(BFloat16 b) => System.Runtime.CompilerServices.Unsafe.As<BFloat16, ushort>(ref b);

    public static uint[] F32(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.to(ScalarType.Float32).cpu().contiguous().reshape(-1).data<float>().ToArray().Select(BitConverter.SingleToUInt32Bits).ToArray();
    }

    public static float[] Floats(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.to(ScalarType.Float32).cpu().contiguous().reshape(-1).data<float>().ToArray();
    }

    public static byte[] Bytes(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.cpu().contiguous().reshape(-1).data<byte>().ToArray();
    }
}
