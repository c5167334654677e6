using TorchSharp;

namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// The collectives 0/1 Adam needs across data-parallel ranks. <see cref="LocalCommunication"/> is the one-process
/// version; a multi-rank one wraps an MPI/NCCL all-reduce and the 1-bit <c>CompressedAllReducer</c>.
/// </summary>
public interface IOptimizerCommunication
{
    /// <summary>Full-precision all-reduce, in place: every rank ends with the mean over ranks.</summary>
    void AllReduceAverage(torch.Tensor tensor);

    /// <summary>
    /// DeepSpeed's <c>compressed_allreduce</c>, in place, returning <paramref name="buffer"/>: 1-bit compression with
    /// worker and server error feedback. The error buffers persist between calls, one pair per <paramref name="key"/>
    /// (the optimizer uses the parameter name).
    /// </summary>
    torch.Tensor CompressedAllReduce(torch.Tensor buffer, string key);

    /// <summary>Zeroes every error-feedback buffer (0/1 Adam does this once, when the variance freezes).</summary>
    void ResetCompressionErrors();

    /// <summary>Copies of this rank's error-feedback buffers under names of the implementation's choosing.</summary>
    IReadOnlyDictionary<string, torch.Tensor> SaveCompressionErrors();

    /// <summary>Replaces all error-feedback buffers by copies of what <see cref="SaveCompressionErrors"/> returned.</summary>
    void LoadCompressionErrors(IReadOnlyDictionary<string, torch.Tensor> state);
}
