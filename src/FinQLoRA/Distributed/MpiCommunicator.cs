using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using FinQLoRA.Distributed.Mpi;
using FinQLoRA.Runtime;
using TorchSharp;

namespace FinQLoRA.Distributed;

/// <summary>
/// <see cref="ICommunicator"/> over the MPI C API (Open MPI, loaded at run time; binary details in
/// <see cref="OpenMpiAbi"/>). Tensor memory goes to MPI without copies when the tensor is a contiguous CPU tensor
/// of a type MPI can reduce; otherwise through a host copy (<see cref="HostStaging"/>). Every operation is started
/// non-blocking and polled under the <see cref="CollectiveWatchdog"/>. MPI is initialised with
/// <c>MPI_THREAD_SERIALIZED</c> and calls are serialised by a lock, so any thread may use the communicator.
/// </summary>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    /// <summary>Largest piece handed to one MPI call (counts are C ints); bigger buffers go in several pieces.</summary>
    private const long MaxBytesPerCall = 1L << 30;

    /// <summary>MPI guarantees tags up to 32767 (MPI_TAG_UB may be larger, but portable code stays below).</summary>
    public const int MaxTag = 32767;

    private static readonly object InitGate = new();
    private static bool _initialised;

    private readonly IMpiAbi _abi;
    private readonly MpiNative _mpi;
    private readonly CollectiveWatchdog _watchdog;
    private readonly object _gate = new();
    private long _bytesSent;
    private bool _disposed;

    private MpiCommunicator(IMpiAbi abi, MpiNative mpi, int rank, int size, int localRank, CollectiveWatchdog watchdog)
    {
        _abi = abi;
        _mpi = mpi;
        Rank = rank;
        Size = size;
        LocalRank = localRank;
        _watchdog = watchdog;
    }

    public int Rank { get; }
    public int Size { get; }
    public int LocalRank { get; }
    public string Backend => "mpi";
    public long BytesSent => Interlocked.Read(ref _bytesSent);

    /// <summary>The watchdog guarding every operation.</summary>
    public CollectiveWatchdog Watchdog => _watchdog;

    /// <summary>Initialises MPI (once per process) and returns the world communicator. Call only in a process
    /// started by an MPI launcher (see <see cref="LaunchEnvironment"/>).</summary>
    public static MpiCommunicator Initialize(int localRank, CollectiveWatchdog? watchdog = null)
    {
        lock (InitGate)
        {
            if (_initialised)
                throw new InvalidOperationException("MPI is already initialised in this process; create one MpiCommunicator and share it");
            IMpiAbi abi = new OpenMpiAbi();
            IntPtr library = LoadLibrary(abi);
            abi.Bind(library);
            var mpi = new MpiNative(library);

            int finalized = 0, initialized = 0, provided = 0, rank = 0, size = 0;
            mpi.Finalized(&finalized);
            if (finalized != 0) throw new InvalidOperationException("MPI was already finalised in this process and cannot be initialised again");
            mpi.Initialized(&initialized);
            if (initialized == 0)
                Check(mpi, mpi.InitThread(null, null, MpiNative.ThreadSerialized, &provided), "MPI_Init_thread");
            Check(mpi, mpi.CommRank(abi.CommWorld, &rank), "MPI_Comm_rank");
            Check(mpi, mpi.CommSize(abi.CommWorld, &size), "MPI_Comm_size");
            _initialised = true;
            return new MpiCommunicator(abi, mpi, rank, size, localRank, watchdog ?? CollectiveWatchdog.FromEnvironment());
        }
    }

    /// <summary>Whether an MPI library can be loaded here (nothing is initialised).</summary>
    public static bool IsInstalled()
    {
        foreach (string name in new OpenMpiAbi().LibraryNames)
            if (NativeLibrary.TryLoad(name, out _)) return true;
        return false;
    }

    private static IntPtr LoadLibrary(IMpiAbi abi)
    {
        foreach (string name in abi.LibraryNames)
            if (NativeLibrary.TryLoad(name, out IntPtr handle)) return handle;
        throw new UserInputException($"{abi.Name} library ({string.Join(" or ", abi.LibraryNames)}) not found, but this process was started by an MPI launcher; install it with: apt-get install -y openmpi-bin libopenmpi-dev");
    }

    public void AllReduceSum(torch.Tensor tensor) => AllReduce(tensor, average: false);

    public void AllReduceAverage(torch.Tensor tensor) => AllReduce(tensor, average: true);

    private void AllReduce(torch.Tensor tensor, bool average)
    {
        if (tensor.dtype is torch.ScalarType.Bool or torch.ScalarType.ComplexFloat32 or torch.ScalarType.ComplexFloat64)
            throw new ArgumentException($"all-reduce of {tensor.dtype} tensors is not supported", nameof(tensor));
        if (average && !tensor.is_floating_point())
            throw new ArgumentException($"all-reduce average needs a floating-point tensor, got {tensor.dtype}", nameof(tensor));
        nint? reductionType = _abi.ReductionType(tensor.dtype);
        // float16/bfloat16: no MPI type; sum in float32 and round once, which is also more accurate.
        torch.ScalarType wire = reductionType is null ? torch.ScalarType.Float32 : tensor.dtype;
        nint mpiType = reductionType ?? _abi.ReductionType(torch.ScalarType.Float32)!.Value;
        lock (_gate)
        {
            ThrowIfDisposed();
            torch.Tensor buffer = HostStaging.Stage(tensor, wire);
            long elementSize = buffer.element_size(), count = buffer.numel(), step = MaxBytesPerCall / elementSize;
            IntPtr data = count > 0 ? TensorMemory.DataPointer(buffer) : 0;
            for (long offset = 0; offset < count; offset += step)
            {
                nint piece = data + (nint)(offset * elementSize);
                int n = (int)Math.Min(step, count - offset);
                Run("MPI_Iallreduce", r => _mpi.Iallreduce(_abi.InPlace, piece, n, mpiType, _abi.OpSum, _abi.CommWorld, r));
            }
            if (average) buffer.div_(Size);
            Interlocked.Add(ref _bytesSent, TrafficModel.AllReduce(count * elementSize, Size));
            HostStaging.Return(buffer, tensor, writeBack: true);
        }
    }

    public void AllGather(torch.Tensor input, torch.Tensor output)
    {
        CollectiveShapes.CheckAllGather(input, output, Size);
        Exchange(input, output, (send, receive) =>
        {
            int bytes = CheckedCount(HostStaging.Bytes(send), "all-gather input");
            if (bytes > 0)
                Run("MPI_Iallgather", r => _mpi.Iallgather(TensorMemory.DataPointer(send), bytes, _abi.Byte, TensorMemory.DataPointer(receive), bytes, _abi.Byte, _abi.CommWorld, r));
            return TrafficModel.AllGather(bytes, Size);
        });
    }

    public void AllToAll(torch.Tensor input, torch.Tensor output)
    {
        CollectiveShapes.CheckAllToAll(input, output, Size);
        Exchange(input, output, (send, receive) =>
        {
            long total = HostStaging.Bytes(send);
            int chunk = CheckedCount(total / Size, "all-to-all chunk");
            if (chunk > 0)
                Run("MPI_Ialltoall", r => _mpi.Ialltoall(TensorMemory.DataPointer(send), chunk, _abi.Byte, TensorMemory.DataPointer(receive), chunk, _abi.Byte, _abi.CommWorld, r));
            return TrafficModel.AllToAll(total, Size);
        });
    }

    public void Broadcast(torch.Tensor tensor, int root)
    {
        CheckRank(root, nameof(root));
        Piecewise(tensor, receives: Rank != root, "MPI_Ibcast",
            (data, bytes, r) => _mpi.Ibcast(data, bytes, _abi.Byte, root, _abi.CommWorld, r),
            total => TrafficModel.Broadcast(total, Size, Rank, root));
    }

    public void Send(torch.Tensor tensor, int destination, int tag)
    {
        CheckRank(destination, nameof(destination));
        CheckTag(tag);
        Piecewise(tensor, receives: false, $"MPI_Isend(to rank {destination}, tag {tag})",
            (data, bytes, r) => _mpi.Isend(data, bytes, _abi.Byte, destination, tag, _abi.CommWorld, r),
            TrafficModel.Send);
    }

    public void Recv(torch.Tensor into, int source, int tag)
    {
        CheckRank(source, nameof(source));
        CheckTag(tag);
        Piecewise(into, receives: true, $"MPI_Irecv(from rank {source}, tag {tag})",
            (data, bytes, r) => _mpi.Irecv(data, bytes, _abi.Byte, source, tag, _abi.CommWorld, r),
            _ => 0);
    }

    public void Barrier()
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            Run("MPI_Ibarrier", r => _mpi.Ibarrier(_abi.CommWorld, r));
        }
    }

    [DoesNotReturn]
    public void Abort(string message, int exitCode)
    {
        // No lock: the thread holding it may be the one stuck in a collective.
        Console.Out.Flush();
        Console.Error.WriteLine(message);
        Console.Error.Flush();
        _mpi.Abort(_abi.CommWorld, exitCode);
        Environment.Exit(exitCode); // MPI_Abort does not return; this is only a backstop
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>Calls <c>MPI_Finalize</c>. Every rank must dispose its communicator at a normal end of the job;
    /// a rank that exits without it makes Open MPI abort the others.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            int finalized = 0;
            _mpi.Finalized(&finalized);
            if (finalized == 0) Check(_mpi, _mpi.Finalize(), "MPI_Finalize");
        }
    }

    /// <summary>A collective from <paramref name="input"/> into <paramref name="output"/>, both staged on the host (the
    /// output written back); <paramref name="run"/> returns the bytes this rank sent.</summary>
    private void Exchange(torch.Tensor input, torch.Tensor output, Func<torch.Tensor, torch.Tensor, long> run)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            torch.Tensor send = HostStaging.Stage(input, input.dtype), receive = HostStaging.StageForWrite(output, output.dtype);
            Interlocked.Add(ref _bytesSent, run(send, receive));
            HostStaging.Return(send, input, writeBack: false);
            HostStaging.Return(receive, output, writeBack: true);
        }
    }

    /// <summary>An MPI call that starts a non-blocking operation and writes its request handle.</summary>
    private delegate int StartCall(nint* request);

    /// <summary>An MPI call over one piece of a buffer (see <see cref="Piecewise"/>).</summary>
    private delegate int PieceCall(IntPtr data, int bytes, nint* request);

    /// <summary>Starts one non-blocking operation and polls it to completion under the watchdog.</summary>
    private void Run(string operation, StartCall start)
    {
        nint request = 0;
        int rc = start(&request);
        Complete(rc, ref request, operation);
    }

    /// <summary>Polls a started request to completion under the watchdog.</summary>
    private void Complete(int startCode, ref nint request, string operation)
    {
        Check(_mpi, startCode, operation);
        CollectiveWatchdog.Deadline deadline = _watchdog.Start();
        while (true)
        {
            int done = 0;
            fixed (nint* slot = &request)
                Check(_mpi, _mpi.Test(slot, &done, _abi.StatusIgnore), $"MPI_Test({operation})");
            if (done != 0) return;
            if (deadline.Expired)
            {
                string message = CollectiveWatchdog.TimeoutMessage(Rank, operation, _watchdog.Timeout);
                _watchdog.BeforeAbort?.Invoke(message);
                Abort(message, CollectiveWatchdog.TimeoutExitCode);
            }
            deadline.Pause();
        }
    }

    /// <summary>An operation over one tensor, staged on the host (to be read where this rank sends, to be written where
    /// it receives) and handed to <paramref name="call"/> in pieces of at most 1 GiB, one MPI operation each;
    /// <paramref name="bytesSent"/> counts this rank's traffic from the buffer's size.</summary>
    private void Piecewise(torch.Tensor tensor, bool receives, string operation, PieceCall call, Func<long, long> bytesSent)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            torch.Tensor buffer = receives ? HostStaging.StageForWrite(tensor, tensor.dtype) : HostStaging.Stage(tensor, tensor.dtype);
            long total = HostStaging.Bytes(buffer);
            if (total > 0)
            {
                IntPtr data = TensorMemory.DataPointer(buffer);
                for (long offset = 0; offset < total; offset += MaxBytesPerCall)
                {
                    IntPtr piece = data + (nint)offset;
                    int bytes = (int)Math.Min(MaxBytesPerCall, total - offset);
                    Run(operation, r => call(piece, bytes, r));
                }
            }
            Interlocked.Add(ref _bytesSent, bytesSent(total));
            HostStaging.Return(buffer, tensor, writeBack: receives);
        }
    }

    private static int CheckedCount(long bytes, string what) =>
        bytes <= int.MaxValue ? (int)bytes : throw new ArgumentException($"{what} of {bytes} bytes exceeds MPI's 2 GiB count limit; split it into smaller calls");

    private void CheckRank(int rank, string name)
    {
        if (rank < 0 || rank >= Size) throw new ArgumentOutOfRangeException(name, rank, $"rank must be in [0, {Size})");
    }

    private static void CheckTag(int tag)
    {
        if (tag < 0 || tag > MaxTag) throw new ArgumentOutOfRangeException(nameof(tag), tag, $"tag must be in [0, {MaxTag}]");
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private static void Check(MpiNative mpi, int code, string operation)
    {
        // The default error handler (MPI_ERRORS_ARE_FATAL) aborts before we get here; this covers handlers that return.
        if (code != MpiNative.Success) throw new InvalidOperationException($"{operation} failed: {mpi.Describe(code)}");
    }
}
