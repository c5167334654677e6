using FinQLoRA.Distributed;
using static TorchSharp.torch;

namespace FinQLoRA.Inference.Pipeline;

/// <summary>
/// What every stage must know about a generation call, sent from rank 0 so that rank 0's prompts and options are
/// the ones that count: the prompt lengths (stages build padding masks and KV caches from them), the batch and
/// micro-batch sizes, and the decoding options the last stage samples with. Stop ids and stop strings stay on rank 0,
/// which alone decides when sequences end.
/// </summary>
internal sealed record PipelineRequest(int[] Lengths, int BatchSize, int MicroBatches, GenerationOptions Options)
{
    private const int HeaderLength = 7;

    /// <summary>Rank 0 passes its request (or null when it rejected the call, so the others fail too instead of
    /// waiting forever); the other ranks pass null and get rank 0's.</summary>
    public static PipelineRequest Exchange(ICommunicator comm, PipelineRequest? mine)
    {
        using var scope = NewDisposeScope();
        var options = mine?.Options;
        var header = tensor(mine == null
            ? new long[HeaderLength]
            : [1, mine.Lengths.Length, mine.BatchSize, mine.MicroBatches, options!.MaxNewTokens, options.TopK, options.Seed]);
        var floats = tensor(options == null ? new double[2] : [options.Temperature, options.TopP]);
        comm.Broadcast(header, 0);
        long[] h = header.data<long>().ToArray();
        if (h[0] != 1)
            throw new UserInputException("rank 0 rejected the generation request (its error message says why); every rank stops");
        comm.Broadcast(floats, 0);
        var lengths = mine != null ? tensor(mine.Lengths.Select(l => (long)l).ToArray()) : zeros(h[1], ScalarType.Int64);
        if (h[1] > 0) comm.Broadcast(lengths, 0);
        if (mine != null && comm.Rank == 0) return mine;
        double[] f = floats.data<double>().ToArray();
        return new PipelineRequest(lengths.data<long>().ToArray().Select(l => (int)l).ToArray(), (int)h[2], (int)h[3],
            new GenerationOptions { MaxNewTokens = (int)h[4], TopK = (int)h[5], Temperature = f[0], TopP = f[1], Seed = h[6] });
    }

    /// <summary>Rows of each micro-batch of each batch: consecutive batches of <see cref="BatchSize"/> prompts, each
    /// cut into up to <see cref="MicroBatches"/> contiguous, nearly equal parts.</summary>
    public IEnumerable<int[][]> Batches()
    {
        for (int start = 0; start < Lengths.Length; start += BatchSize)
        {
            int n = Math.Min(BatchSize, Lengths.Length - start), m = Math.Min(MicroBatches, n);
            var parts = new int[m][];
            int row = start;
            for (int k = 0; k < m; k++)
            {
                int size = n / m + (k < n % m ? 1 : 0);
                parts[k] = Enumerable.Range(row, size).ToArray();
                row += size;
            }
            yield return parts;
        }
    }
}
