using System.Runtime.InteropServices;

namespace FinQLoRA.Distributed.Nccl;

/// <summary>
/// The three CUDA driver calls NCCL needs around it, from <c>libcuda.so.1</c> (always installed with the driver,
/// unlike a runtime library of a matching version): making a GPU current for this thread (what
/// <c>cudaSetDevice</c> does: retain the device's primary context and make it current, which libtorch and NCCL's
/// own runtime both honour), and asking whether the work queued on a stream has finished, so the watchdog can poll
/// instead of blocking in <c>cudaStreamSynchronize</c>.
/// </summary>
internal sealed unsafe class CudaDriver
{
    public const int Success = 0;
    public const int NotReady = 600; // CUDA_ERROR_NOT_READY

    private readonly delegate* unmanaged<uint, int> _init;
    private readonly delegate* unmanaged<int*, int, int> _deviceGet;
    private readonly delegate* unmanaged<nint*, int, int> _primaryContextRetain;
    private readonly delegate* unmanaged<nint, int> _contextSetCurrent;
    private readonly delegate* unmanaged<nint, int> _streamQuery;

    private CudaDriver(IntPtr library)
    {
        _init = (delegate* unmanaged<uint, int>)NativeLibrary.GetExport(library, "cuInit");
        _deviceGet = (delegate* unmanaged<int*, int, int>)NativeLibrary.GetExport(library, "cuDeviceGet");
        _primaryContextRetain = (delegate* unmanaged<nint*, int, int>)NativeLibrary.GetExport(library, "cuDevicePrimaryCtxRetain");
        _contextSetCurrent = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(library, "cuCtxSetCurrent");
        _streamQuery = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(library, "cuStreamQuery");
    }

    public static CudaDriver Load()
    {
        if (!NativeLibrary.TryLoad("libcuda.so.1", out IntPtr library))
            throw new UserInputException("libcuda.so.1 (the NVIDIA driver) not found: NCCL needs a CUDA GPU and its driver; run on a GPU machine or without CUDA");
        var driver = new CudaDriver(library);
        Check(driver._init(0), "cuInit");
        return driver;
    }

    /// <summary>Makes GPU <paramref name="ordinal"/> current for the calling thread.</summary>
    public void SetDevice(int ordinal)
    {
        int device;
        nint context;
        Check(_deviceGet(&device, ordinal), $"cuDeviceGet({ordinal})");
        Check(_primaryContextRetain(&context, device), "cuDevicePrimaryCtxRetain");
        Check(_contextSetCurrent(context), "cuCtxSetCurrent");
    }

    /// <summary>True when everything queued on <paramref name="stream"/> has run.</summary>
    public bool StreamIdle(nint stream)
    {
        int code = _streamQuery(stream);
        if (code == NotReady) return false;
        Check(code, "cuStreamQuery");
        return true;
    }

    private static void Check(int code, string call)
    {
        if (code != Success) throw new InvalidOperationException($"{call} failed with CUDA driver error {code}");
    }
}
