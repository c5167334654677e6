using System.Runtime.InteropServices;

namespace FinQLoRA.Runtime.DeviceMemory;

/// <summary>
/// The three NVML calls that read a GPU's memory in use (libnvidia-ml.so.1 ships with the NVIDIA driver, so it is on
/// every machine that can run CUDA, whichever libtorch is loaded). TorchSharp 0.107 exposes none of libtorch's CUDA
/// caching-allocator statistics, and those are C++ only (no C entry point to call), so the device's own count is the
/// figure there is: memory the driver has handed out on the whole GPU, the CUDA context included.
/// </summary>
internal static partial class Nvml
{
    private const string Library = "libnvidia-ml.so.1";

    [StructLayout(LayoutKind.Sequential)]
    private struct MemoryInfo
    {
        public ulong Total;
        public ulong Free;
        public ulong Used;
    }

    [LibraryImport(Library, EntryPoint = "nvmlInit_v2")]
    private static partial int Init();

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetHandleByIndex_v2")]
    private static partial int HandleByIndex(uint index, out nint device);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetMemoryInfo")]
    private static partial int GetMemoryInfo(nint device, out MemoryInfo memory);

    /// <summary>A handle to the GPU NVML numbers <paramref name="nvmlIndex"/>, or the reason there is none.</summary>
    public static (nint Handle, string? Error) Open(uint nvmlIndex)
    {
        try
        {
            int rc = Init();
            if (rc != 0) return (0, $"nvmlInit_v2 returned {rc}");
            rc = HandleByIndex(nvmlIndex, out nint handle);
            return rc == 0 ? (handle, null) : (0, $"nvmlDeviceGetHandleByIndex_v2({nvmlIndex}) returned {rc}");
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return (0, $"{Library} does not load ({e.Message.Split('\n')[0]})");
        }
    }

    /// <summary>Bytes in use on the GPU (all processes), or -1 when NVML cannot say.</summary>
    public static long UsedBytes(nint handle) => GetMemoryInfo(handle, out var info) == 0 ? (long)info.Used : -1;
}
