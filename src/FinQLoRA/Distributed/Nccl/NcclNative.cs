using System.Runtime.InteropServices;

namespace FinQLoRA.Distributed.Nccl;

/// <summary>
/// NCCL 2's C API, loaded at run time from <c>libnccl.so.2</c> (it is not a dependency of the build and absent
/// on CPU machines). Enum values are from <c>nccl.h</c>; they have been stable since NCCL 2.0 (bfloat16: 2.10).
/// </summary>
internal sealed unsafe class NcclNative
{
    public const string DefaultLibraryName = "libnccl.so.2";
    public const int Success = 0;
    public const int InProgress = 7; // ncclInProgress (non-blocking communicators only)

    public const int Int8 = 0, Uint8 = 1, Int32 = 2, Int64 = 4, Float16 = 6, Float32 = 7, Float64 = 8, BFloat16 = 9;
    public const int OpSum = 0;

    /// <summary><c>ncclUniqueId</c>: 128 opaque bytes, passed by value to <c>ncclCommInitRank</c>.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 128)]
    public struct UniqueId
    {
        public fixed byte Bytes[128];
    }

    public readonly delegate* unmanaged<int*, int> GetVersion;
    public readonly delegate* unmanaged<UniqueId*, int> GetUniqueId;
    public readonly delegate* unmanaged<nint*, int, UniqueId, int, int> CommInitRank;
    public readonly delegate* unmanaged<nint, int> CommDestroy;
    public readonly delegate* unmanaged<nint, int> CommAbort;
    public readonly delegate* unmanaged<nint, int*, int> CommGetAsyncError;
    public readonly delegate* unmanaged<int, nint> GetErrorString;
    public readonly delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int> AllReduce;
    public readonly delegate* unmanaged<nint, nint, nuint, int, nint, nint, int> AllGather;
    public readonly delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int> Broadcast;
    public readonly delegate* unmanaged<nint, nuint, int, int, nint, nint, int> Send;
    public readonly delegate* unmanaged<nint, nuint, int, int, nint, nint, int> Recv;
    public readonly delegate* unmanaged<int> GroupStart;
    public readonly delegate* unmanaged<int> GroupEnd;

    private NcclNative(IntPtr library)
    {
        GetVersion = (delegate* unmanaged<int*, int>)Get(library, "ncclGetVersion");
        GetUniqueId = (delegate* unmanaged<UniqueId*, int>)Get(library, "ncclGetUniqueId");
        CommInitRank = (delegate* unmanaged<nint*, int, UniqueId, int, int>)Get(library, "ncclCommInitRank");
        CommDestroy = (delegate* unmanaged<nint, int>)Get(library, "ncclCommDestroy");
        CommAbort = (delegate* unmanaged<nint, int>)Get(library, "ncclCommAbort");
        CommGetAsyncError = (delegate* unmanaged<nint, int*, int>)Get(library, "ncclCommGetAsyncError");
        GetErrorString = (delegate* unmanaged<int, nint>)Get(library, "ncclGetErrorString");
        AllReduce = (delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int>)Get(library, "ncclAllReduce");
        AllGather = (delegate* unmanaged<nint, nint, nuint, int, nint, nint, int>)Get(library, "ncclAllGather");
        Broadcast = (delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int>)Get(library, "ncclBroadcast");
        Send = (delegate* unmanaged<nint, nuint, int, int, nint, nint, int>)Get(library, "ncclSend");
        Recv = (delegate* unmanaged<nint, nuint, int, int, nint, nint, int>)Get(library, "ncclRecv");
        GroupStart = (delegate* unmanaged<int>)Get(library, "ncclGroupStart");
        GroupEnd = (delegate* unmanaged<int>)Get(library, "ncclGroupEnd");
    }

    /// <summary>Loads NCCL, or explains in one line how to get it.</summary>
    public static NcclNative Load(string libraryName = DefaultLibraryName)
    {
        if (!NativeLibrary.TryLoad(libraryName, out IntPtr library))
            throw new UserInputException($"NCCL ({libraryName}) not found: collectives on CUDA tensors need it; install NCCL 2 (e.g. apt-get install libnccl2 from NVIDIA's CUDA repository, or put libnccl.so.2 on LD_LIBRARY_PATH), or set {DistributedContext.BackendVariable}=mpi to stage GPU tensors through host memory");
        return new NcclNative(library);
    }

    public string Describe(int code) => Marshal.PtrToStringUTF8(GetErrorString(code)) ?? $"NCCL error {code}";

    private static IntPtr Get(IntPtr library, string name) =>
        NativeLibrary.TryGetExport(library, name, out IntPtr address)
            ? address
            : throw new InvalidOperationException($"libnccl does not export {name}; NCCL 2.10 or newer is required");
}
