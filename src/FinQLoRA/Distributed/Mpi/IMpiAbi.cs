using TorchSharp;

namespace FinQLoRA.Distributed.Mpi;

/// <summary>
/// Everything that differs between MPI implementations at the binary level. The C API's function signatures are
/// the same everywhere; what differs is the library's file name and how predefined handles (communicators,
/// datatypes, operations, <c>MPI_IN_PLACE</c>, <c>MPI_STATUS_IGNORE</c>) are represented: Open MPI uses
/// addresses of exported globals, MPICH uses integer constants. Handles are carried as <c>nint</c> in both cases
/// (an MPICH <c>int</c> handle fits, and x86-64 passes both in one register/stack slot).
/// Adding MPICH means writing one more implementation of this interface.
/// </summary>
internal interface IMpiAbi
{
    /// <summary>Human-readable name for messages, e.g. "Open MPI".</summary>
    string Name { get; }

    /// <summary>The library file names to try, in order (sonames first).</summary>
    IReadOnlyList<string> LibraryNames { get; }

    /// <summary>Resolves the predefined handles once the library is loaded.</summary>
    void Bind(IntPtr library);

    nint CommWorld { get; }
    nint OpSum { get; }
    nint Byte { get; }
    nint InPlace { get; }
    nint StatusIgnore { get; }

    /// <summary>The MPI datatype for element-wise reductions on <paramref name="type"/>, or null when MPI has none
    /// (bfloat16, float16, bool: callers stage those through float32).</summary>
    nint? ReductionType(torch.ScalarType type);
}
