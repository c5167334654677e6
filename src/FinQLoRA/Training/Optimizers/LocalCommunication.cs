using TorchSharp;

namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// <see cref="IOptimizerCommunication"/> for a single process (world size 1). The full all-reduce is the identity;
/// the compressed all-reduce is DeepSpeed's <c>compressed_allreduce</c> (<c>runtime/comm/nccl.py</c>) with one rank,
/// so a one-process run sees exactly the 1-bit quantisation noise and error feedback a rank of a larger job sees:
/// <code>
/// pad to N = ⌈n/8⌉·8 zeros        (world·lcm(world, 8) = 8 for world 1)
/// worker:  x += worker_error;  s = ‖x‖₂/√N;  c = s·sign(x), sign(0) = +1;  worker_error = x − c
/// server:  y = c/1 + server_error;  t = ‖y‖₂/√N;  server_error = y − t·sign(y)
/// result:  the first n values of t·sign(y)
/// </code>
/// Arithmetic is float32, as on the GPU.
/// </summary>
public sealed class LocalCommunication : IOptimizerCommunication, IDisposable
{
    private const string WorkerSuffix = ".worker_error";
    private const string ServerSuffix = ".server_error";

    private readonly Dictionary<string, (torch.Tensor Worker, torch.Tensor Server)> _errors = new();

    /// <summary>One rank: the mean over ranks is the tensor itself.</summary>
    public void AllReduceAverage(torch.Tensor tensor)
    {
    }

    public torch.Tensor CompressedAllReduce(torch.Tensor buffer, string key)
    {
        if (!buffer.is_floating_point()) throw new ArgumentException($"compressed all-reduce needs a floating-point tensor, got {buffer.dtype}", nameof(buffer));
        long n = buffer.numel();
        long padded = (n + 7) / 8 * 8;
        var (worker, server) = ErrorsFor(key, padded, buffer.device);

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        torch.Tensor x = torch.zeros(padded, torch.ScalarType.Float32, buffer.device);
        x.narrow(0, 0, n).copy_(buffer.reshape(-1));

        // Worker side: add the error left over from the last call, compress with one scale, keep the new error.
        x.add_(worker);
        torch.Tensor workerScale = x.norm().div(Math.Sqrt(padded));
        torch.Tensor workerCompressed = workerScale * PlusMinusOne(x);
        worker.copy_(x - workerCompressed);

        // Server side: the average over one rank of the decompressed chunks is that rank's chunk; compress it again
        // with the server's own error feedback.
        torch.Tensor y = workerCompressed.add(server);
        torch.Tensor serverScale = y.norm().div(Math.Sqrt(padded));
        torch.Tensor serverCompressed = serverScale * PlusMinusOne(y);
        server.copy_(y - serverCompressed);

        buffer.copy_(serverCompressed.narrow(0, 0, n).view(buffer.shape));
        return buffer;
    }

    public void ResetCompressionErrors()
    {
        foreach (var (worker, server) in _errors.Values)
        {
            worker.zero_();
            server.zero_();
        }
    }

    public IReadOnlyDictionary<string, torch.Tensor> SaveCompressionErrors()
    {
        var saved = new Dictionary<string, torch.Tensor>();
        foreach (var (key, (worker, server)) in _errors)
        {
            saved[key + WorkerSuffix] = worker.clone().DetachFromDisposeScope();
            saved[key + ServerSuffix] = server.clone().DetachFromDisposeScope();
        }
        return saved;
    }

    public void LoadCompressionErrors(IReadOnlyDictionary<string, torch.Tensor> state)
    {
        var loaded = new Dictionary<string, (torch.Tensor, torch.Tensor)>();
        foreach (var (name, tensor) in state)
        {
            if (!name.EndsWith(WorkerSuffix, StringComparison.Ordinal)) continue;
            string key = name[..^WorkerSuffix.Length];
            if (!state.TryGetValue(key + ServerSuffix, out var server))
                throw new UserInputException($"optimizer state has '{name}' but no '{key}{ServerSuffix}': the checkpoint is incomplete; resume from another one");
            if (server.numel() != tensor.numel())
                throw new UserInputException($"optimizer state '{key}{ServerSuffix}' has {server.numel()} values but '{name}' has {tensor.numel()}; a one-process run needs equal sizes (was the checkpoint written by a multi-rank run?)");
            loaded[key] = (Copy(tensor), Copy(server));
        }
        if (loaded.Count * 2 != state.Count)
            throw new UserInputException($"optimizer state has {state.Count} error-feedback tensors, expected pairs '<key>{WorkerSuffix}'/'<key>{ServerSuffix}'; the checkpoint is incomplete");
        DisposeErrors();
        foreach (var (key, pair) in loaded) _errors[key] = pair;
    }

    public void Dispose() => DisposeErrors();

    private (torch.Tensor Worker, torch.Tensor Server) ErrorsFor(string key, long padded, torch.Device device)
    {
        if (_errors.TryGetValue(key, out var existing))
        {
            if (existing.Worker.numel() != padded)
                throw new ArgumentException($"compressed all-reduce key '{key}' was used with a buffer padded to {existing.Worker.numel()} values, now {padded}; use one key per buffer", nameof(key));
            return existing;
        }
        var created = (torch.zeros(padded, torch.ScalarType.Float32, device).DetachFromDisposeScope(),
                       torch.zeros(padded, torch.ScalarType.Float32, device).DetachFromDisposeScope());
        _errors[key] = created;
        return created;
    }

    /// <summary>sign(x) with sign(0) = +1, as DeepSpeed's <c>x.sign().add_(1).bool()</c> packing gives.</summary>
    private static torch.Tensor PlusMinusOne(torch.Tensor x) => x.ge(0).to(torch.ScalarType.Float32).mul_(2).sub_(1);

    private static torch.Tensor Copy(torch.Tensor t) =>
        t.to(torch.ScalarType.Float32).reshape(-1).clone().DetachFromDisposeScope();

    private void DisposeErrors()
    {
        foreach (var (worker, server) in _errors.Values)
        {
            worker.Dispose();
            server.Dispose();
        }
        _errors.Clear();
    }
}
