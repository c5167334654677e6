using System.Diagnostics.CodeAnalysis;
using TorchSharp;

namespace FinQLoRA.Distributed;

/// <summary>
/// Collective and point-to-point communication between the ranks of one job, on TorchSharp tensors.
/// All operations are blocking for the caller and guarded by a <see cref="CollectiveWatchdog"/>: a peer that never
/// arrives aborts the job with a message instead of hanging it. Every rank must call the collectives in the same
/// order with tensors of the same shape and dtype.
/// Tensors may be any dtype; all-reduce of float16/bfloat16 is summed in float32 and rounded once.
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's rank in the job, 0 ≤ Rank &lt; Size.</summary>
    int Rank { get; }

    /// <summary>Number of ranks in the job.</summary>
    int Size { get; }

    /// <summary>Rank among the processes on this machine (selects the GPU).</summary>
    int LocalRank { get; }

    /// <summary>"single", "mpi" or "nccl".</summary>
    string Backend { get; }

    /// <summary>Payload bytes this rank has handed to the network so far, counted with the textbook
    /// bandwidth-optimal algorithms (see <see cref="TrafficModel"/>), so numbers compare across backends.</summary>
    long BytesSent { get; }

    /// <summary>Element-wise sum over all ranks, in place.</summary>
    void AllReduceSum(torch.Tensor tensor);

    /// <summary>Element-wise mean over all ranks, in place (floating-point tensors).</summary>
    void AllReduceAverage(torch.Tensor tensor);

    /// <summary>Every rank's <paramref name="input"/>, concatenated in rank order into <paramref name="output"/>,
    /// which must hold Size × input.numel() elements of the same dtype.</summary>
    void AllGather(torch.Tensor input, torch.Tensor output);

    /// <summary><paramref name="input"/> is split into Size equal chunks; chunk j goes to rank j. Chunk i of
    /// <paramref name="output"/> (same numel and dtype as input) is what rank i sent to this rank.</summary>
    void AllToAll(torch.Tensor input, torch.Tensor output);

    /// <summary>Copies <paramref name="root"/>'s tensor into the same tensor on every rank.</summary>
    void Broadcast(torch.Tensor tensor, int root);

    /// <summary>Sends to one rank; matched by (source, tag) with a <see cref="Recv"/> of the same size on that rank.</summary>
    void Send(torch.Tensor tensor, int destination, int tag);

    /// <summary>Receives into <paramref name="into"/> (which fixes the expected size and dtype) from <paramref name="source"/>.</summary>
    void Recv(torch.Tensor into, int source, int tag);

    /// <summary>Returns once every rank has called it.</summary>
    void Barrier();

    /// <summary>Prints <paramref name="message"/> on stderr and terminates every rank of the job.</summary>
    [DoesNotReturn]
    void Abort(string message, int exitCode);
}
