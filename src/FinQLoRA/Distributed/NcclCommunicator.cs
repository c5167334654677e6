using System.Diagnostics.CodeAnalysis;
using FinQLoRA.Distributed.Nccl;
using FinQLoRA.Runtime;
using TorchSharp;

namespace FinQLoRA.Distributed;

/// <summary>
/// <see cref="ICommunicator"/> for CUDA tensors over NCCL, which is loaded at run time (<c>libnccl.so.2</c>;
/// a one-line <see cref="UserInputException"/> when it is absent). Set-up: rank 0 makes the NCCL unique id,
/// the 128 bytes are broadcast over the <paramref name="bootstrap"/> communicator (MPI), and every rank calls
/// <c>ncclCommInitRank</c> on GPU <c>LocalRank</c>. CPU tensors are passed to the bootstrap communicator, so one
/// object serves both. Work is queued on the legacy default stream (the one libtorch uses unless told otherwise),
/// so it is ordered after the kernels that produced the tensor; completion is polled under the watchdog, and a
/// timeout aborts the NCCL communicator before aborting the job. NCCL has no message tags: point-to-point messages
/// between two ranks are matched in the order they are posted, and <c>tag</c> is only checked for range.
/// This communicator owns <paramref name="bootstrap"/> and disposes it.
/// </summary>
public sealed unsafe class NcclCommunicator : ICommunicator
{
    private const nint DefaultStream = 0;

    private readonly ICommunicator _bootstrap;
    private readonly NcclNative _nccl;
    private readonly CudaDriver _cuda;
    private readonly CollectiveWatchdog _watchdog;

    /// <summary>The watchdog guarding every operation.</summary>
    public CollectiveWatchdog Watchdog => _watchdog;
    private readonly object _gate = new();
    private nint _comm;
    private long _bytesSent;

    private NcclCommunicator(ICommunicator bootstrap, NcclNative nccl, CudaDriver cuda, nint comm, CollectiveWatchdog watchdog)
    {
        _bootstrap = bootstrap;
        _nccl = nccl;
        _cuda = cuda;
        _comm = comm;
        _watchdog = watchdog;
    }

    public int Rank => _bootstrap.Rank;
    public int Size => _bootstrap.Size;
    public int LocalRank => _bootstrap.LocalRank;
    public string Backend => "nccl";
    public long BytesSent => Interlocked.Read(ref _bytesSent) + _bootstrap.BytesSent;

    /// <summary>Creates the NCCL communicator for GPU <c>bootstrap.LocalRank</c>. Collective: every rank calls it.</summary>
    public static NcclCommunicator Create(ICommunicator bootstrap, CollectiveWatchdog? watchdog = null) =>
        Create(bootstrap, watchdog, NcclNative.DefaultLibraryName);

    internal static NcclCommunicator Create(ICommunicator bootstrap, CollectiveWatchdog? watchdog, string libraryName)
    {
        NcclNative nccl = NcclNative.Load(libraryName); // first, so a missing NCCL is reported before anything else
        CudaDriver cuda = CudaDriver.Load();
        cuda.SetDevice(bootstrap.LocalRank);

        NcclNative.UniqueId id = default;
        if (bootstrap.Rank == 0) Check(nccl, nccl.GetUniqueId(&id), "ncclGetUniqueId");
        using (var idBytes = torch.empty(128, torch.ScalarType.Byte))
        {
            var span = TensorMemory.AsSpan<byte>(idBytes);
            new ReadOnlySpan<byte>(id.Bytes, 128).CopyTo(span);
            bootstrap.Broadcast(idBytes, root: 0);
            span.CopyTo(new Span<byte>(id.Bytes, 128));
        }
        nint comm = 0;
        Check(nccl, nccl.CommInitRank(&comm, bootstrap.Size, id, bootstrap.Rank), "ncclCommInitRank");
        return new NcclCommunicator(bootstrap, nccl, cuda, comm, watchdog ?? CollectiveWatchdog.FromEnvironment());
    }

    public void AllReduceSum(torch.Tensor tensor) => AllReduce(tensor, average: false);

    public void AllReduceAverage(torch.Tensor tensor) => AllReduce(tensor, average: true);

    private void AllReduce(torch.Tensor tensor, bool average)
    {
        if (tensor.device_type != DeviceType.CUDA)
        {
            if (average) _bootstrap.AllReduceAverage(tensor); else _bootstrap.AllReduceSum(tensor);
            return;
        }
        if (average && !tensor.is_floating_point())
            throw new ArgumentException($"all-reduce average needs a floating-point tensor, got {tensor.dtype}", nameof(tensor));
        int type = ReductionType(tensor.dtype);
        torch.Tensor buffer = tensor.is_contiguous() ? tensor : tensor.contiguous();
        lock (_gate)
        {
            nint data = TensorMemory.DataPointer(buffer);
            Run(_nccl.AllReduce(data, data, (nuint)buffer.numel(), type, NcclNative.OpSum, _comm, DefaultStream), "ncclAllReduce");
            Interlocked.Add(ref _bytesSent, TrafficModel.AllReduce(HostStaging.Bytes(buffer), Size));
        }
        if (average) buffer.div_(Size);
        if (!ReferenceEquals(buffer, tensor)) { tensor.copy_(buffer); buffer.Dispose(); }
    }

    public void AllGather(torch.Tensor input, torch.Tensor output)
    {
        if (input.device_type != DeviceType.CUDA || output.device_type != DeviceType.CUDA) { _bootstrap.AllGather(input, output); return; }
        CollectiveShapes.CheckAllGather(input, output, Size);
        torch.Tensor send = input.contiguous(), receive = output.is_contiguous() ? output : output.contiguous();
        long bytes = HostStaging.Bytes(send);
        lock (_gate)
        {
            Run(_nccl.AllGather(TensorMemory.DataPointer(send), TensorMemory.DataPointer(receive), (nuint)bytes, NcclNative.Uint8, _comm, DefaultStream), "ncclAllGather");
            Interlocked.Add(ref _bytesSent, TrafficModel.AllGather(bytes, Size));
        }
        Finish(send, input, receive, output);
    }

    public void AllToAll(torch.Tensor input, torch.Tensor output)
    {
        if (input.device_type != DeviceType.CUDA || output.device_type != DeviceType.CUDA) { _bootstrap.AllToAll(input, output); return; }
        CollectiveShapes.CheckAllToAll(input, output, Size);
        torch.Tensor send = input.contiguous(), receive = output.is_contiguous() ? output : output.contiguous();
        long total = HostStaging.Bytes(send), chunk = total / Size;
        lock (_gate)
        {
            nint sendData = TensorMemory.DataPointer(send), receiveData = TensorMemory.DataPointer(receive);
            // NCCL has no all-to-all primitive; the documented idiom is a group of sends and receives.
            Check(_nccl, _nccl.GroupStart(), "ncclGroupStart");
            for (int peer = 0; peer < Size; peer++)
            {
                Check(_nccl, _nccl.Send(sendData + (nint)(peer * chunk), (nuint)chunk, NcclNative.Uint8, peer, _comm, DefaultStream), "ncclSend");
                Check(_nccl, _nccl.Recv(receiveData + (nint)(peer * chunk), (nuint)chunk, NcclNative.Uint8, peer, _comm, DefaultStream), "ncclRecv");
            }
            Run(_nccl.GroupEnd(), "ncclGroupEnd(all-to-all)");
            Interlocked.Add(ref _bytesSent, TrafficModel.AllToAll(total, Size));
        }
        Finish(send, input, receive, output);
    }

    public void Broadcast(torch.Tensor tensor, int root)
    {
        if (tensor.device_type != DeviceType.CUDA) { _bootstrap.Broadcast(tensor, root); return; }
        if (root < 0 || root >= Size) throw new ArgumentOutOfRangeException(nameof(root), root, $"rank must be in [0, {Size})");
        torch.Tensor buffer = tensor.is_contiguous() ? tensor : tensor.contiguous();
        long bytes = HostStaging.Bytes(buffer);
        lock (_gate)
        {
            nint data = TensorMemory.DataPointer(buffer);
            Run(_nccl.Broadcast(data, data, (nuint)bytes, NcclNative.Uint8, root, _comm, DefaultStream), "ncclBroadcast");
            Interlocked.Add(ref _bytesSent, TrafficModel.Broadcast(bytes, Size, Rank, root));
        }
        if (!ReferenceEquals(buffer, tensor)) { tensor.copy_(buffer); buffer.Dispose(); }
    }

    public void Send(torch.Tensor tensor, int destination, int tag)
    {
        if (tensor.device_type != DeviceType.CUDA) { _bootstrap.Send(tensor, destination, tag); return; }
        CheckPeer(destination, tag);
        torch.Tensor buffer = tensor.contiguous();
        long bytes = HostStaging.Bytes(buffer);
        lock (_gate)
        {
            Run(_nccl.Send(TensorMemory.DataPointer(buffer), (nuint)bytes, NcclNative.Uint8, destination, _comm, DefaultStream), $"ncclSend(to rank {destination})");
            Interlocked.Add(ref _bytesSent, TrafficModel.Send(bytes));
        }
        if (!ReferenceEquals(buffer, tensor)) buffer.Dispose();
    }

    public void Recv(torch.Tensor into, int source, int tag)
    {
        if (into.device_type != DeviceType.CUDA) { _bootstrap.Recv(into, source, tag); return; }
        CheckPeer(source, tag);
        torch.Tensor buffer = into.is_contiguous() ? into : into.contiguous();
        lock (_gate)
            Run(_nccl.Recv(TensorMemory.DataPointer(buffer), (nuint)HostStaging.Bytes(buffer), NcclNative.Uint8, source, _comm, DefaultStream), $"ncclRecv(from rank {source})");
        if (!ReferenceEquals(buffer, into)) { into.copy_(buffer); buffer.Dispose(); }
    }

    public void Barrier() => _bootstrap.Barrier();

    [DoesNotReturn]
    public void Abort(string message, int exitCode)
    {
        if (_comm != 0) _nccl.CommAbort(_comm); // frees GPU kernels stuck waiting for a dead peer
        _bootstrap.Abort(message, exitCode);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_comm != 0) { _nccl.CommDestroy(_comm); _comm = 0; }
        }
        _bootstrap.Dispose();
    }

    /// <summary>Checks the enqueue, then polls the stream and NCCL's asynchronous error until done, under the watchdog.</summary>
    private void Run(int enqueueCode, string operation)
    {
        Check(_nccl, enqueueCode, operation);
        CollectiveWatchdog.Deadline deadline = _watchdog.Start();
        while (!_cuda.StreamIdle(DefaultStream))
        {
            int asyncError = 0;
            _nccl.CommGetAsyncError(_comm, &asyncError);
            if (asyncError is not NcclNative.Success and not NcclNative.InProgress)
                Abort($"rank {Rank}: {operation} failed: {_nccl.Describe(asyncError)} — aborting", 1);
            if (deadline.Expired)
            {
                string message = CollectiveWatchdog.TimeoutMessage(Rank, operation, _watchdog.Timeout);
                _watchdog.BeforeAbort?.Invoke(message);
                Abort(message, CollectiveWatchdog.TimeoutExitCode);
            }
            deadline.Pause();
        }
    }

    private static void Finish(torch.Tensor send, torch.Tensor input, torch.Tensor receive, torch.Tensor output)
    {
        if (!ReferenceEquals(send, input)) send.Dispose();
        if (!ReferenceEquals(receive, output)) { output.copy_(receive); receive.Dispose(); }
    }

    private void CheckPeer(int peer, int tag)
    {
        if (peer < 0 || peer >= Size) throw new ArgumentOutOfRangeException(nameof(peer), peer, $"rank must be in [0, {Size})");
        if (tag < 0 || tag > MpiCommunicator.MaxTag) throw new ArgumentOutOfRangeException(nameof(tag), tag, $"tag must be in [0, {MpiCommunicator.MaxTag}]");
    }

    private static int ReductionType(torch.ScalarType type) => type switch
    {
        torch.ScalarType.Float32 => NcclNative.Float32,
        torch.ScalarType.BFloat16 => NcclNative.BFloat16,
        torch.ScalarType.Float16 => NcclNative.Float16,
        torch.ScalarType.Float64 => NcclNative.Float64,
        torch.ScalarType.Int32 => NcclNative.Int32,
        torch.ScalarType.Int64 => NcclNative.Int64,
        torch.ScalarType.Int8 => NcclNative.Int8,
        torch.ScalarType.Byte => NcclNative.Uint8,
        _ => throw new ArgumentException($"NCCL cannot all-reduce {type} tensors"),
    };

    private static void Check(NcclNative nccl, int code, string operation)
    {
        if (code is not NcclNative.Success and not NcclNative.InProgress)
            throw new InvalidOperationException($"{operation} failed: {nccl.Describe(code)}");
    }
}
