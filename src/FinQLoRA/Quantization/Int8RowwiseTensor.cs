using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization;

/// <summary>
/// An LLM.int8() weight (bitsandbytes <c>Int8Params</c>): <c>CB</c> int8 [out, in] and <c>SCB</c> fp32 [out] with
/// SCB[r] = max|W[r,:]| and CB = round-half-even(W · (127/SCB[r])). The activation threshold is not a property of
/// the weight; it belongs to the forward pass (<see cref="LlmInt8.Linear"/>).
/// </summary>
public sealed class Int8RowwiseTensor : QuantizedTensor
{
    internal Int8RowwiseTensor(long[] shape, ScalarType originalDtype, Tensor cb, Tensor scb)
        : base(shape, originalDtype)
    {
        if (shape.Length != 2)
            throw new UserInputException($"int8 weight: shape [{string.Join(", ", shape)}] must be 2-D [out, in]");
        if (cb.dtype != ScalarType.Int8 || !cb.shape.SequenceEqual(shape))
            throw new UserInputException($"int8 weight: 'weight' is {cb.dtype} [{string.Join(", ", cb.shape)}]; expected int8 [{string.Join(", ", shape)}]");
        if (scb.dtype != ScalarType.Float32 || scb.numel() != shape[0])
            throw new UserInputException($"int8 weight: 'SCB' is {scb.dtype} with {scb.numel()} values; expected float32 with {shape[0]} (one per output row)");
        CB = Own(cb.contiguous());
        SCB = Own(scb.reshape(shape[0]).contiguous());
    }

    /// <summary>int8 [out, in] row-wise codes.</summary>
    public Tensor CB { get; }
    /// <summary>fp32 [out] row absmax.</summary>
    public Tensor SCB { get; }

    public override QuantizedFormat Format => QuantizedFormat.Int8;
    public override Device Device => CB.device;
    public override long StorageBytes => CB.numel() + SCB.numel() * 4;

    /// <summary>1/127 as bitsandbytes' <c>int8_vectorwise_dequant</c> writes it.</summary>
    internal const float InverseScale = 7.874015718698502e-3f;

    /// <summary><c>CB · SCB[r] · (1/127)</c> in fp32 (bitsandbytes <c>int8_vectorwise_dequant</c>), then cast.</summary>
    public override Tensor Dequantize(ScalarType dtype)
    {
        ThrowIfDisposed();
        using var scope = NewDisposeScope();
        Tensor w = CB.to(ScalarType.Float32).mul_(SCB.unsqueeze(1)).mul_(InverseScale);
        return w.to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The same values as <see cref="Dequantize"/> written into <paramref name="output"/> ([out, in], bf16 or fp32,
    /// same device) with in-place ops, so no full-size temporaries are allocated (bf16 goes through this thread's fp32
    /// workspace on the CPU).
    /// </summary>
    public void DequantizeInto(Tensor output)
    {
        ThrowIfDisposed();
        if (!output.shape.SequenceEqual(Shape))
            throw new ArgumentException($"output shape [{string.Join(", ", output.shape)}] must be [{string.Join(", ", Shape)}]", nameof(output));
        using var scope = NewDisposeScope();
        Tensor fp32 = output.dtype == ScalarType.Float32 ? output
            : Device.type == DeviceType.CPU ? WeightWorkspace.Borrow(Shape, ScalarType.Float32)
            : empty(Shape, ScalarType.Float32, device: Device);
        fp32.copy_(CB).mul_(SCB.unsqueeze(1)).mul_(InverseScale);
        if (!ReferenceEquals(fp32, output)) output.copy_(fp32);
    }

    public override QuantizedTensor To(Device device)
    {
        ThrowIfDisposed();
        using var scope = NewDisposeScope();
        return new Int8RowwiseTensor(Shape, OriginalDtype, CB.to(device), SCB.to(device));
    }

    protected override void DisposeStorage()
    {
        CB.Dispose();
        SCB.Dispose();
    }
}
