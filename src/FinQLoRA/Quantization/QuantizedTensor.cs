using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization;

/// <summary>
/// A frozen weight stored in a quantized format. It owns its storage tensors (detached from any dispose scope, freed
/// by <see cref="Dispose"/>); <see cref="Dequantize"/> materialises the full-precision weight as a new tensor that
/// the caller disposes (normally inside a dispose scope, so it lives only as long as one matmul).
/// </summary>
public abstract class QuantizedTensor : IDisposable
{
    protected QuantizedTensor(long[] shape, ScalarType originalDtype)
    {
        if (shape.Length == 0 || shape.Any(d => d <= 0))
            throw new ArgumentException($"quantized tensor shape [{string.Join(", ", shape)}] must have positive dimensions", nameof(shape));
        Shape = shape;
        OriginalDtype = originalDtype;
    }

    /// <summary>The logical shape of the weight, e.g. [out_features, in_features].</summary>
    public long[] Shape { get; }

    /// <summary>Number of logical elements.</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>The dtype the weight had before quantization (bitsandbytes' quant_state <c>dtype</c>).</summary>
    public ScalarType OriginalDtype { get; }

    public abstract QuantizedFormat Format { get; }

    /// <summary>Bytes held by the quantized storage: packed values plus every quantization constant.</summary>
    public abstract long StorageBytes { get; }

    /// <summary>The device of the storage; dequantized weights are produced there.</summary>
    public abstract Device Device { get; }

    /// <summary>The full weight in <paramref name="dtype"/> (bfloat16 or float32; float16 too), on <see cref="Device"/>.</summary>
    public abstract Tensor Dequantize(ScalarType dtype);

    /// <summary>A copy of this tensor with its storage on <paramref name="device"/> (this one is left as it is).</summary>
    public abstract QuantizedTensor To(Device device);

    public bool IsDisposed { get; private set; }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        DisposeStorage();
        GC.SuppressFinalize(this);
    }

    protected abstract void DisposeStorage();

    protected void ThrowIfDisposed()
    {
        if (IsDisposed) throw new ObjectDisposedException(GetType().Name);
    }

    /// <summary>Takes ownership of a storage tensor: out of any dispose scope, lives until <see cref="Dispose"/>.</summary>
    protected static Tensor Own(Tensor t) => t.DetachFromDisposeScope();

    public override string ToString() =>
        $"{Format} [{string.Join(", ", Shape)}] ({StorageBytes:N0} bytes on {Device})";
}
