using System.Diagnostics.CodeAnalysis;
using TorchSharp;

namespace FinQLoRA.Distributed;

/// <summary>
/// The communicator of a non-distributed run: one rank, so reductions leave tensors unchanged, gathers copy and
/// messages sent to itself (rank 0) are queued per tag until received. Lets the same training code run with and
/// without a launcher.
/// </summary>
public sealed class SingleProcessCommunicator : ICommunicator
{
    private readonly Dictionary<int, Queue<torch.Tensor>> _messages = new();

    public int Rank => 0;
    public int Size => 1;
    public int LocalRank => 0;
    public string Backend => "single";
    public long BytesSent => 0;

    public void AllReduceSum(torch.Tensor tensor) { }

    public void AllReduceAverage(torch.Tensor tensor)
    {
        if (!tensor.is_floating_point())
            throw new ArgumentException($"all-reduce average needs a floating-point tensor, got {tensor.dtype}", nameof(tensor));
    }

    public void AllGather(torch.Tensor input, torch.Tensor output)
    {
        CollectiveShapes.CheckAllGather(input, output, Size);
        output.copy_(input.reshape(output.shape));
    }

    public void AllToAll(torch.Tensor input, torch.Tensor output)
    {
        CollectiveShapes.CheckAllToAll(input, output, Size);
        output.copy_(input.reshape(output.shape));
    }

    public void Broadcast(torch.Tensor tensor, int root) => CheckSelf(root, nameof(root));

    public void Send(torch.Tensor tensor, int destination, int tag)
    {
        CheckSelf(destination, nameof(destination));
        if (!_messages.TryGetValue(tag, out var queue)) _messages[tag] = queue = new Queue<torch.Tensor>();
        queue.Enqueue(tensor.detach().clone().DetachFromDisposeScope());
    }

    public void Recv(torch.Tensor into, int source, int tag)
    {
        CheckSelf(source, nameof(source));
        if (!_messages.TryGetValue(tag, out var queue) || queue.Count == 0)
            throw new InvalidOperationException($"rank 0: Recv(tag {tag}) with no matching Send in a single-process run would wait forever");
        using torch.Tensor message = queue.Dequeue();
        if (message.numel() != into.numel() || message.dtype != into.dtype)
            throw new ArgumentException($"Recv(tag {tag}) into {into.numel()} {into.dtype} elements, but {message.numel()} {message.dtype} elements were sent", nameof(into));
        into.copy_(message.reshape(into.shape));
    }

    public void Barrier() { }

    [DoesNotReturn]
    public void Abort(string message, int exitCode)
    {
        Console.Out.Flush();
        Console.Error.WriteLine(message);
        Console.Error.Flush();
        Environment.Exit(exitCode);
        throw new InvalidOperationException("unreachable");
    }

    public void Dispose()
    {
        foreach (var queue in _messages.Values)
            while (queue.Count > 0) queue.Dequeue().Dispose();
    }

    private static void CheckSelf(int rank, string name)
    {
        if (rank != 0) throw new ArgumentOutOfRangeException(name, rank, "a single-process run has only rank 0");
    }
}
