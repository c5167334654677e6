using TorchSharp;

namespace FinQLoRA.Distributed;

/// <summary>
/// MPI needs a contiguous host buffer of a type it can reduce. Most tensors already are one and are used
/// in place (zero copy, through <see cref="Runtime.TensorMemory.DataPointer"/>); others (non-contiguous, on a GPU,
/// or bfloat16/float16 for a reduction) go through a temporary copy that is written back afterwards.
/// </summary>
internal static class HostStaging
{
    /// <summary>A contiguous CPU tensor of <paramref name="type"/> with <paramref name="tensor"/>'s values:
    /// the tensor itself when it already is one.</summary>
    public static torch.Tensor Stage(torch.Tensor tensor, torch.ScalarType type)
    {
        if (tensor.device_type == DeviceType.CPU && tensor.dtype == type && tensor.is_contiguous()) return tensor;
        return tensor.to(type, torch.CPU).contiguous();
    }

    /// <summary>A contiguous CPU tensor to receive into, shaped like <paramref name="tensor"/>.</summary>
    public static torch.Tensor StageForWrite(torch.Tensor tensor, torch.ScalarType type)
    {
        if (tensor.device_type == DeviceType.CPU && tensor.dtype == type && tensor.is_contiguous()) return tensor;
        return torch.empty(tensor.shape, type, torch.CPU);
    }

    /// <summary>Copies a staged buffer back into its tensor and frees it (nothing when it was used in place).</summary>
    public static void Return(torch.Tensor staged, torch.Tensor tensor, bool writeBack)
    {
        if (ReferenceEquals(staged, tensor)) return;
        if (writeBack) tensor.copy_(staged);
        staged.Dispose();
    }

    public static long Bytes(torch.Tensor tensor) => tensor.numel() * tensor.element_size();
}
