using System.Runtime.InteropServices;
using TorchSharp;

namespace FinQLoRA.Distributed.Mpi;

/// <summary>
/// Open MPI (4.x and 5.x, soname <c>libmpi.so.40</c>): predefined handles are the addresses of exported globals
/// such as <c>ompi_mpi_comm_world</c>; <c>MPI_IN_PLACE</c> is <c>(void*)1</c> and <c>MPI_STATUS_IGNORE</c> is NULL
/// (both from Open MPI's <c>mpi.h</c>).
/// </summary>
internal sealed class OpenMpiAbi : IMpiAbi
{
    private IntPtr _library;
    private readonly Dictionary<torch.ScalarType, nint> _reductionTypes = new();

    public string Name => "Open MPI";
    public IReadOnlyList<string> LibraryNames { get; } = ["libmpi.so.40", "libmpi.so"];

    public nint CommWorld { get; private set; }
    public nint OpSum { get; private set; }
    public nint Byte { get; private set; }
    public nint InPlace => 1;
    public nint StatusIgnore => 0;

    public void Bind(IntPtr library)
    {
        _library = library;
        CommWorld = Export("ompi_mpi_comm_world");
        OpSum = Export("ompi_mpi_op_sum");
        Byte = Export("ompi_mpi_byte");
        _reductionTypes[torch.ScalarType.Float32] = Export("ompi_mpi_float");
        _reductionTypes[torch.ScalarType.Float64] = Export("ompi_mpi_double");
        _reductionTypes[torch.ScalarType.Int8] = Export("ompi_mpi_int8_t");
        _reductionTypes[torch.ScalarType.Byte] = Export("ompi_mpi_uint8_t");
        _reductionTypes[torch.ScalarType.Int16] = Export("ompi_mpi_int16_t");
        _reductionTypes[torch.ScalarType.Int32] = Export("ompi_mpi_int32_t");
        _reductionTypes[torch.ScalarType.Int64] = Export("ompi_mpi_int64_t");
    }

    public nint? ReductionType(torch.ScalarType type) => _reductionTypes.TryGetValue(type, out nint h) ? h : null;

    private nint Export(string symbol) =>
        NativeLibrary.TryGetExport(_library, symbol, out IntPtr address)
            ? address
            : throw new InvalidOperationException($"the loaded MPI library does not export '{symbol}'; it is not Open MPI (MPICH and derivatives use a different binary interface)");
}
