using System.Runtime.InteropServices;

namespace FinQLoRA.Distributed.Mpi;

/// <summary>
/// The dozen MPI C functions the communicator needs, resolved from an already loaded library as unmanaged
/// function pointers. The signatures are the MPI standard's, with every handle (<c>MPI_Comm</c>,
/// <c>MPI_Datatype</c>, <c>MPI_Op</c>, <c>MPI_Request</c>) carried as <c>nint</c>; see <see cref="IMpiAbi"/>.
/// </summary>
internal sealed unsafe class MpiNative
{
    public const int Success = 0;
    public const int ThreadSerialized = 2; // MPI_THREAD_SERIALIZED in both Open MPI and MPICH

    public readonly delegate* unmanaged<int*, byte***, int, int*, int> InitThread;
    public readonly delegate* unmanaged<int*, int> Initialized;
    public readonly delegate* unmanaged<int*, int> Finalized;
    public readonly delegate* unmanaged<int> Finalize;
    public readonly delegate* unmanaged<nint, int*, int> CommRank;
    public readonly delegate* unmanaged<nint, int*, int> CommSize;
    public readonly delegate* unmanaged<nint, int, int> Abort;
    public readonly delegate* unmanaged<nint, nint, int, nint, nint, nint, nint*, int> Iallreduce;
    public readonly delegate* unmanaged<nint, int, nint, nint, int, nint, nint, nint*, int> Iallgather;
    public readonly delegate* unmanaged<nint, int, nint, nint, int, nint, nint, nint*, int> Ialltoall;
    public readonly delegate* unmanaged<nint, int, nint, int, nint, nint*, int> Ibcast;
    public readonly delegate* unmanaged<nint, nint*, int> Ibarrier;
    public readonly delegate* unmanaged<nint, int, nint, int, int, nint, nint*, int> Isend;
    public readonly delegate* unmanaged<nint, int, nint, int, int, nint, nint*, int> Irecv;
    public readonly delegate* unmanaged<nint*, int*, nint, int> Test;
    public readonly delegate* unmanaged<int, byte*, int*, int> ErrorString;

    public MpiNative(IntPtr library)
    {
        InitThread = (delegate* unmanaged<int*, byte***, int, int*, int>)Get(library, "MPI_Init_thread");
        Initialized = (delegate* unmanaged<int*, int>)Get(library, "MPI_Initialized");
        Finalized = (delegate* unmanaged<int*, int>)Get(library, "MPI_Finalized");
        Finalize = (delegate* unmanaged<int>)Get(library, "MPI_Finalize");
        CommRank = (delegate* unmanaged<nint, int*, int>)Get(library, "MPI_Comm_rank");
        CommSize = (delegate* unmanaged<nint, int*, int>)Get(library, "MPI_Comm_size");
        Abort = (delegate* unmanaged<nint, int, int>)Get(library, "MPI_Abort");
        Iallreduce = (delegate* unmanaged<nint, nint, int, nint, nint, nint, nint*, int>)Get(library, "MPI_Iallreduce");
        Iallgather = (delegate* unmanaged<nint, int, nint, nint, int, nint, nint, nint*, int>)Get(library, "MPI_Iallgather");
        Ialltoall = (delegate* unmanaged<nint, int, nint, nint, int, nint, nint, nint*, int>)Get(library, "MPI_Ialltoall");
        Ibcast = (delegate* unmanaged<nint, int, nint, int, nint, nint*, int>)Get(library, "MPI_Ibcast");
        Ibarrier = (delegate* unmanaged<nint, nint*, int>)Get(library, "MPI_Ibarrier");
        Isend = (delegate* unmanaged<nint, int, nint, int, int, nint, nint*, int>)Get(library, "MPI_Isend");
        Irecv = (delegate* unmanaged<nint, int, nint, int, int, nint, nint*, int>)Get(library, "MPI_Irecv");
        Test = (delegate* unmanaged<nint*, int*, nint, int>)Get(library, "MPI_Test");
        ErrorString = (delegate* unmanaged<int, byte*, int*, int>)Get(library, "MPI_Error_string");
    }

    /// <summary>MPI's own text for an error code.</summary>
    public string Describe(int code)
    {
        byte* buffer = stackalloc byte[1024]; // MPI_MAX_ERROR_STRING is 256 (Open MPI) or 1024 (MPICH)
        int length = 0;
        return ErrorString(code, buffer, &length) == Success ? Marshal.PtrToStringUTF8((IntPtr)buffer, length) : $"MPI error {code}";
    }

    private static IntPtr Get(IntPtr library, string name) =>
        NativeLibrary.TryGetExport(library, name, out IntPtr address)
            ? address
            : throw new InvalidOperationException($"the loaded MPI library does not export {name} (MPI 3.0 or newer is required)");
}
