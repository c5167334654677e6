using System.Buffers;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization.Gemv;

/// <summary>
/// A frozen dense bf16 weight × 1–8 bf16 rows on the CPU by <see cref="Bf16GemvKernel"/>: at decode the bf16 matmul
/// of a single row leaves memory bandwidth unused (it is built for many rows), and on a quantized model the tied or
/// separate bf16 head is the largest weight read per token. The output is bf16 like the matmul's, from fp32 sums, so
/// it equals <c>linear(x, W)</c> up to fp32 summation order. Off with <c>FINQLORA_FUSED_GEMV=off</c>, as the quantized
/// kernels.
/// </summary>
public static unsafe class DenseGemv
{
    /// <summary>Whether the decode path takes x·Wᵀ through <see cref="Multiply"/>: <see cref="Supports"/> and at most
    /// <see cref="RowLimit"/> rows.</summary>
    public static bool Applies(Tensor x, Tensor weight) =>
        Supports(x, weight) && x.numel() / weight.shape[1] <= RowLimit(x) && FusedGemv.Enabled;

    /// <summary>What the kernel computes: bf16 input and weight on the CPU, W contiguous [out, in], no gradient wanted,
    /// 1 to <see cref="FusedGemv.MaxRows"/> rows, a row length it reads on this CPU.</summary>
    public static bool Supports(Tensor x, Tensor weight) =>
        x.dtype == ScalarType.BFloat16 && weight.dtype == ScalarType.BFloat16
        && x.device_type == DeviceType.CPU && weight.device_type == DeviceType.CPU
        && weight.dim() == 2 && weight.is_contiguous() && x.dim() >= 1 && x.shape[^1] == weight.shape[1]
        && !((x.requires_grad || weight.requires_grad) && is_grad_enabled())
        && x.numel() / weight.shape[1] is var rows && rows >= 1 && rows <= FusedGemv.MaxRows
        && weight.shape[1] <= int.MaxValue && Bf16GemvKernel.Supports(weight.shape[1]);

    /// <summary>
    /// The most rows for which the kernel is the faster product. Where the CPU multiplies bf16 natively (AVX-512 BF16,
    /// <see cref="CpuMatmulPrecision"/>), libtorch's matmul does 32 multiply-adds per instruction to the kernel's 16:
    /// the kernel wins only on a single row, where the matmul leaves bandwidth unused (128,256 × 2048 head: 1.3× at 1
    /// row, 0.5× at 4, bench generate --quantized --kernel). Where bf16 matmuls are widened to fp32 the kernel takes
    /// every decode size.
    /// </summary>
    public static int RowLimit(Tensor x) => CpuMatmulPrecision.MatmulDType(x) == ScalarType.BFloat16 ? 1 : FusedGemv.MaxRows;

    /// <summary>x [..., in] · Wᵀ → [..., out] bf16, for any case <see cref="Supports"/> takes.</summary>
    public static Tensor Multiply(Tensor x, Tensor weight)
    {
        if (!Supports(x, weight))
            throw new ArgumentException($"the dense gemv does not take x {x.dtype} [{string.Join(", ", x.shape)}] · W {weight.dtype} [{string.Join(", ", weight.shape)}]ᵀ; check DenseGemv.Supports first");
        int inF = (int)weight.shape[1];
        long outF = weight.shape[0];
        int rows = (int)(x.numel() / inF);
        using var scope = NewDisposeScope();
        Tensor x32 = x.detach().reshape(rows, inF).to(ScalarType.Float32).contiguous();
        Tensor y = empty([rows, outF], ScalarType.BFloat16);
        float[] laidOut = ArrayPool<float>.Shared.Rent(rows * inF);
        try
        {
            fixed (float* xs = laidOut)
            {
                FourBitGemvKernel.Deinterleave((float*)TensorMemory.DataPointer(x32), xs, rows, inF);
                var output = new GemvOutput((void*)TensorMemory.DataPointer(y), bf16: true, outF);
                ushort* w = (ushort*)TensorMemory.DataPointer(weight);
                float* input = xs;
                FusedGemv.ForOutputRanges(outF, outF * inF, (o0, o1) => Bf16GemvKernel.Run(w, inF, input, rows, o0, o1, output));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(laidOut);
        }
        return y.reshape([.. x.shape[..^1], outF]).MoveToOuterDisposeScope();
    }
}
