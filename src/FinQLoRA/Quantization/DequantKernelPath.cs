namespace FinQLoRA.Quantization;

/// <summary>Which instruction set the 4-bit dequantization kernel uses; tests force each one, callers use Auto.</summary>
internal enum DequantKernelPath
{
    Auto,
    Avx512,
    Avx2,
    Scalar,
}
