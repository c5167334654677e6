using TorchSharp;

namespace FinQLoRA.Distributed;

/// <summary>
/// 1-bit compressed all-reduce with two-level error feedback, the <c>compressed_allreduce</c> of DeepSpeed's
/// <c>runtime/comm/nccl.py</c> used by 0/1 Adam and 1-bit Adam. For a buffer of n values, padded with zeros to
/// N = a multiple of world·lcm(world, 8) so that every rank's chunk of N/world signs fills whole bytes:
/// <code>
/// worker (every rank, whole buffer):   x += worker_error
///                                      scale = ‖x‖₂ / √N;  C(x) = scale · sign(x), sign(0) = +1
///                                      worker_error = x − C(x)
/// exchange:                            all-to-all of packed sign chunks (chunk r → rank r), all-gather of scales
/// server (rank r, chunk r):            m = Σ_senders scale_s · sign_s[chunk r] / world
///                                      m += server_error;  s = ‖m‖₂ / √(N/world)
///                                      server_error = m − s · sign(m)
/// exchange:                            all-gather of packed server signs and server scales
/// result (every rank):                 chunk r = s_r · sign_r, for every r; the first n values, in place
/// </code>
/// Signs are packed as in <see cref="SignPacking"/>. Arithmetic is float32 whatever the buffer's dtype. The error
/// buffers persist between calls, one pair per caller-chosen key (e.g. one per parameter group); the key must
/// keep its buffer size.
/// </summary>
public sealed class CompressedAllReducer(ICommunicator communicator) : IDisposable
{
    private readonly Dictionary<string, ErrorFeedback> _errors = new();

    /// <summary>Bytes this rank sent in the last call (per <see cref="TrafficModel"/>).</summary>
    public long LastBytesSent { get; private set; }

    public long TotalBytesSent { get; private set; }

    /// <summary>n rounded up to a multiple of world·lcm(world, 8).</summary>
    public static long PaddedLength(long n, int world)
    {
        long unit = world * Lcm(world, 8);
        return (n + unit - 1) / unit * unit;
    }

    /// <summary>Replaces <paramref name="buffer"/> (any shape, floating point) by the compressed average over all
    /// ranks, in place, and returns it.</summary>
    public torch.Tensor Reduce(torch.Tensor buffer, string key = "default")
    {
        if (!buffer.is_floating_point()) throw new ArgumentException($"compressed all-reduce needs a floating-point tensor, got {buffer.dtype}", nameof(buffer));
        int world = communicator.Size;
        long n = buffer.numel(), padded = PaddedLength(n, world), chunk = padded / world;
        ErrorFeedback errors = ErrorsFor(key, padded, buffer.device);
        long before = communicator.BytesSent;

        using (var scope = torch.NewDisposeScope())
        {
            var float32 = torch.ScalarType.Float32;
            torch.Tensor x = torch.zeros(padded, float32, buffer.device);
            x.narrow(0, 0, n).copy_(buffer.reshape(-1));

            // Worker side, whole buffer; then chunk r of the signs goes to rank r and everybody learns every scale.
            var (senders, workerScales) = CompressAndExchange(x, padded, errors.Worker, padded, chunk, communicator.AllToAll);

            // Server side, for the chunk this rank owns: average the senders' decompressed chunks.
            torch.Tensor m = senders.mul(workerScales).div(world).sum(dim: 0L); // not sum(0): a literal 0 converts to ScalarType
            // Then every rank gets every chunk's signs and scale and rebuilds the whole vector.
            var (allSigns, serverScales) = CompressAndExchange(m, chunk, errors.Server, padded, chunk, communicator.AllGather);
            torch.Tensor result = allSigns.mul(serverScales);
            buffer.copy_(result.reshape(-1).narrow(0, 0, n).view(buffer.shape));
        }

        LastBytesSent = communicator.BytesSent - before;
        TotalBytesSent += LastBytesSent;
        return buffer;
    }

    /// <summary>One phase of the reduction: adds the error feedback to <paramref name="x"/> and compresses it, then sends
    /// the packed signs with <paramref name="sendSigns"/> (all-to-all for the workers, all-gather for the servers) and
    /// all-gathers every rank's scale.</summary>
    /// <returns>the received signs as ±1, one row of <paramref name="chunk"/> per rank, and the scales as a column</returns>
    private (torch.Tensor Signs, torch.Tensor Scales) CompressAndExchange(torch.Tensor x, long n, torch.Tensor error,
        long padded, long chunk, Action<torch.Tensor, torch.Tensor> sendSigns)
    {
        int world = communicator.Size;
        x.add_(error);
        var (signs, scale) = CompressWithErrorFeedback(x, n, error);
        torch.Tensor received = torch.empty(padded / 8, torch.ScalarType.Byte, x.device);
        sendSigns(SignPacking.Pack(signs), received);
        torch.Tensor scales = torch.empty(world, torch.ScalarType.Float32, x.device);
        communicator.AllGather(scale, scales);
        return (SignPacking.ToPlusMinusOne(SignPacking.Unpack(received)).view(world, chunk), scales.view(world, 1));
    }

    /// <summary>1-bit compression of x (already holding the error feedback): signs (sign(0) = +1) and one scale
    /// ‖x‖₂/√n; <paramref name="error"/> becomes what the compression lost, to be added back next call.</summary>
    private static (torch.Tensor Signs, torch.Tensor Scale) CompressWithErrorFeedback(torch.Tensor x, long n, torch.Tensor error)
    {
        torch.Tensor signs = x.ge(0);
        torch.Tensor scale = x.norm().div(Math.Sqrt(n)).reshape(1);
        error.copy_(x - scale * SignPacking.ToPlusMinusOne(signs));
        return (signs, scale);
    }

    /// <summary>The persistent error buffers of <paramref name="key"/> (float32; worker: padded length, server:
    /// padded length / world), e.g. to checkpoint them. Live views: writing them changes the state.</summary>
    public (torch.Tensor Worker, torch.Tensor Server) ErrorBuffers(string key) =>
        _errors.TryGetValue(key, out var e) ? (e.Worker, e.Server) : throw new KeyNotFoundException($"no compressed all-reduce has run for key '{key}'");

    /// <summary>Sets the error buffers of <paramref name="key"/> from a checkpoint (copies; creates them when no
    /// reduction has run for the key yet, as after a restart). Sizes must be those this world size gives: worker the
    /// padded length, server the padded length / world.</summary>
    public void RestoreErrors(string key, torch.Tensor worker, torch.Tensor server)
    {
        long padded = worker.numel();
        if (PaddedLength(padded, communicator.Size) != padded || server.numel() * communicator.Size != padded)
            throw new UserInputException($"compressed all-reduce error buffers of '{key}' hold {padded} and {server.numel()} values, which no buffer gives with {communicator.Size} ranks; resume with the number of ranks that wrote the checkpoint");
        ErrorFeedback errors = ErrorsFor(key, padded, worker.device);
        using var noGrad = torch.no_grad();
        errors.Worker.copy_(worker.reshape(-1));
        errors.Server.copy_(server.reshape(-1));
    }

    /// <summary>Zeroes every error buffer (0/1 Adam does this once when the variance freezes).</summary>
    public void ResetErrors()
    {
        foreach (var e in _errors.Values) { e.Worker.zero_(); e.Server.zero_(); }
    }

    public void Dispose()
    {
        foreach (var e in _errors.Values) { e.Worker.Dispose(); e.Server.Dispose(); }
        _errors.Clear();
    }

    private ErrorFeedback ErrorsFor(string key, long padded, torch.Device device)
    {
        if (_errors.TryGetValue(key, out var existing))
        {
            if (existing.Worker.numel() != padded)
                throw new ArgumentException($"compressed all-reduce key '{key}' was used with a buffer padded to {existing.Worker.numel()} values, now {padded}; use one key per buffer", nameof(key));
            return existing;
        }
        var created = new ErrorFeedback(
            torch.zeros(padded, torch.ScalarType.Float32, device).DetachFromDisposeScope(),
            torch.zeros(padded / communicator.Size, torch.ScalarType.Float32, device).DetachFromDisposeScope());
        _errors[key] = created;
        return created;
    }

    private static long Lcm(long a, long b) => a / Gcd(a, b) * b;

    private static long Gcd(long a, long b) => b == 0 ? a : Gcd(b, a % b);

    private sealed record ErrorFeedback(torch.Tensor Worker, torch.Tensor Server);
}
