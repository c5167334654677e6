using FinQLoRA.Distributed;
using FinQLoRA.Training.Optimizers;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>
/// The optimizer's view of the data-parallel group: with one process, <see cref="LocalCommunication"/> (the 1-bit
/// math applied locally); with several, MPI/NCCL all-reduce and the 1-bit <see cref="CompressedAllReducer"/>.
/// </summary>
public sealed class TrainerCommunication : IOptimizerCommunication, IDisposable
{
    private readonly ICommunicator _comm;
    private readonly LocalCommunication? _local;
    private readonly CompressedAllReducer? _compressed;
    private readonly HashSet<string> _keys = new();
    private const string WorkerSuffix = ".worker_error";
    private const string ServerSuffix = ".server_error";

    public TrainerCommunication(ICommunicator comm)
    {
        _comm = comm;
        if (comm.Size == 1) _local = new LocalCommunication();
        else _compressed = new CompressedAllReducer(comm);
    }

    /// <summary>Bytes this rank sent for the optimizer's collectives so far (0 with one process).</summary>
    public long BytesSent => _comm.Size == 1 ? 0 : _comm.BytesSent;

    public void AllReduceAverage(Tensor tensor)
    {
        if (_local != null) _local.AllReduceAverage(tensor);
        else _comm.AllReduceAverage(tensor);
    }

    public Tensor CompressedAllReduce(Tensor buffer, string key)
    {
        if (_local != null) return _local.CompressedAllReduce(buffer, key);
        _keys.Add(key);
        return _compressed!.Reduce(buffer, key);
    }

    public void ResetCompressionErrors()
    {
        if (_local != null) _local.ResetCompressionErrors();
        else _compressed!.ResetErrors();
    }

    public IReadOnlyDictionary<string, Tensor> SaveCompressionErrors()
    {
        if (_local != null) return _local.SaveCompressionErrors();
        var state = new Dictionary<string, Tensor>();
        foreach (string key in _keys)
        {
            var (worker, server) = _compressed!.ErrorBuffers(key);
            state[key + WorkerSuffix] = worker.detach().clone();
            state[key + ServerSuffix] = server.detach().clone();
        }
        return state;
    }

    public void LoadCompressionErrors(IReadOnlyDictionary<string, Tensor> state)
    {
        if (_local != null) { _local.LoadCompressionErrors(state); return; }
        foreach (var (name, worker) in state)
        {
            if (!name.EndsWith(WorkerSuffix, StringComparison.Ordinal)) continue;
            string key = name[..^WorkerSuffix.Length];
            if (!state.TryGetValue(key + ServerSuffix, out var server))
                throw new UserInputException($"optimizer state has '{name}' but no '{key}{ServerSuffix}': the checkpoint is incomplete; resume from another one");
            _compressed!.RestoreErrors(key, worker, server);
            _keys.Add(key);
        }
    }

    public void Dispose()
    {
        _local?.Dispose();
        _compressed?.Dispose();
    }
}
