using FinQLoRA.Distributed;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>
/// The part of the training state that differs between data-parallel ranks, checkpointed per rank so that a
/// multi-rank resume is exact:
/// <list type="bullet">
/// <item><c>rng_state</c>, always: each rank draws dropout masks for its own shard, so the generators drift apart.</item>
/// <item><c>optimizer.*</c> and <c>parameter.*</c> when the optimizer communicates by itself (0/1 Adam): its
/// error-feedback buffers are per rank by construction (each rank compresses its own gradient and serves its own
/// chunk), and between two 1-bit synchronisations each rank takes local steps on its own gradient, so momentum,
/// momentum accumulator and even the adapter weights differ. With AdamW every rank applies the same averaged
/// gradient, so rank 0's optimizer state and adapter are everybody's.</item>
/// </list>
/// Rank 0 gathers the other ranks' tensors by point-to-point messages and writes them into its checkpoint folder,
/// so the folder stays one atomic unit (no rank can leave half a checkpoint behind).
/// </summary>
public static class RankLocalState
{
    public const string RngKey = "rng_state";
    public const string OptimizerPrefix = "optimizer.";
    public const string ParameterPrefix = "parameter.";

    /// <summary>Point-to-point tag of checkpoint traffic (distinct from anything else the trainer sends).</summary>
    private const int Tag = 4242;

    /// <summary>The file of rank <paramref name="rank"/> ≥ 1 in a checkpoint folder (rank 0's is training_state.safetensors).</summary>
    public static string FileName(int rank) => $"training_state.rank{rank}.safetensors";

    /// <summary>
    /// On rank 0: every other rank's tensors, index r−1 for rank r, owned by the caller's dispose scope. On the other ranks:
    /// sends <paramref name="local"/> to rank 0 and returns an empty list. Every rank passes the same names with the
    /// same shapes and dtypes (true when they run the same model, adapter config and optimizer).
    /// </summary>
    public static List<Dictionary<string, Tensor>> GatherToMain(ICommunicator comm, IReadOnlyDictionary<string, Tensor> local)
    {
        var names = local.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        var gathered = new List<Dictionary<string, Tensor>>();
        if (comm.Rank != 0)
        {
            foreach (string name in names) comm.Send(local[name].contiguous(), 0, Tag);
            return gathered;
        }
        for (int rank = 1; rank < comm.Size; rank++)
        {
            var tensors = new Dictionary<string, Tensor>();
            foreach (string name in names)
            {
                Tensor into = empty_like(local[name]);
                comm.Recv(into, rank, Tag);
                tensors[name] = into;
            }
            gathered.Add(tensors);
        }
        return gathered;
    }
}
