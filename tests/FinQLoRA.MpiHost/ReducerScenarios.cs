using System.Globalization;
using FinQLoRA.Distributed;
using TorchSharp;

namespace FinQLoRA.MpiHost;

/// <summary>GradientAllReducer and CompressedAllReducer on values whose results the tests compute by hand (2 ranks).</summary>
internal static class ReducerScenarios
{
    public static void Run(ICommunicator comm)
    {
        using var scope = torch.NewDisposeScope();
        int r = comm.Rank;

        // Buckets of 16 bytes: [3]f32 (12 B) | [2,2]f32 (16 B) | [2]bf16 (new dtype) → 3 buckets.
        var gradients = new[]
        {
            torch.full(3, r + 1f),
            torch.full(new long[] { 2, 2 }, 10f * (r + 1)),
            torch.full(2, r + 1f).to(torch.ScalarType.BFloat16),
        };
        var reducer = new GradientAllReducer(comm, bucketBytes: 16);
        reducer.AllReduceAverage(gradients);
        for (int i = 0; i < gradients.Length; i++) Report.Line(r, $"grad{i}", gradients[i]);
        Report.Line(r, "grad-buckets", reducer.LastBucketCount.ToString(CultureInfo.InvariantCulture));
        Report.Line(r, "grad-bytes", reducer.LastBytesSent.ToString(CultureInfo.InvariantCulture));

        // Inputs of the hand computation in CommunicatorMpiTests.CompressedAllReduceMatchesHandComputation.
        float[] input = r == 0
            ? [10, -10, 2, -2, 10, 10, -10, 2, /* chunk 1 */ -2, 10, -10, 2, -2, 10, 10, -10]
            : [6, 6, 6, 6, -6, -6, -6, 6, /* chunk 1 */ -6, -6, -6, -6, 6, 6, 6, 6];
        using var compressed = new CompressedAllReducer(comm);
        var buffer = torch.tensor(input);
        compressed.Reduce(buffer, "group0");
        Report.Line(r, "compressed", buffer);
        var (worker, server) = compressed.ErrorBuffers("group0");
        Report.Line(r, "worker-error", worker);
        Report.Line(r, "server-error", server);
        Report.Line(r, "compressed-bytes", compressed.LastBytesSent.ToString(CultureInfo.InvariantCulture));
    }
}
