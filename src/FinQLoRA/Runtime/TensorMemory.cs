using System.Runtime.InteropServices;
using TorchSharp;

namespace FinQLoRA.Runtime;

/// <summary>
/// Raw data pointers of TorchSharp tensors, for SIMD kernels and for MPI/NCCL buffers (no copies).
/// <c>Tensor.Handle</c> is the native at::Tensor object and <c>storage().data_ptr()</c> ignores the storage
/// offset, so we call the exported <c>THSTensor_data</c>, which returns the element pointer offset included.
/// </summary>
public static class TensorMemory
{
    static TensorMemory() => TorchNativeLoader.EnsureLoaded();

    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr tensorHandle);

    /// <summary>Pointer to the first element. The tensor must be contiguous and stay alive while the pointer is used.</summary>
    public static IntPtr DataPointer(torch.Tensor tensor)
    {
        if (!tensor.is_contiguous())
            throw new ArgumentException("tensor must be contiguous to expose its data pointer", nameof(tensor));
        return THSTensor_data(tensor.Handle);
    }

    /// <summary>Pointer to the element at index 0 of a tensor of any layout (its storage offset included); the caller
    /// walks it by the tensor's strides. The tensor must stay alive while the pointer is used.</summary>
    public static IntPtr FirstElementPointer(torch.Tensor tensor) => THSTensor_data(tensor.Handle);

    /// <summary>A span over a contiguous CPU tensor's elements (any size; unlike <c>Tensor.bytes</c> not limited to 2 GiB
    /// as long as the element count fits an int).</summary>
    public static unsafe Span<T> AsSpan<T>(torch.Tensor tensor) where T : unmanaged
    {
        if (tensor.device_type != DeviceType.CPU)
            throw new ArgumentException("only CPU tensors can be viewed as spans", nameof(tensor));
        long bytes = tensor.numel() * tensor.element_size();
        if (bytes % sizeof(T) != 0) throw new ArgumentException($"tensor of {bytes} bytes is not a whole number of {typeof(T).Name}");
        return new Span<T>((void*)DataPointer(tensor), checked((int)(bytes / sizeof(T))));
    }
}
