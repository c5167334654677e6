using FinQLoRA.Distributed;
using TorchSharp;

namespace FinQLoRA.MpiHost;

/// <summary>Every ICommunicator operation once, on values whose results the tests know (2 ranks).</summary>
internal static class CollectiveScenarios
{
    public static void Run(ICommunicator comm)
    {
        using var scope = torch.NewDisposeScope();
        int r = comm.Rank;
        Report.Line(r, "size", comm.Size.ToString(System.Globalization.CultureInfo.InvariantCulture));

        var f32 = torch.tensor(new float[] { r + 1, 10 * (r + 1), -0.5f });
        comm.AllReduceSum(f32);
        Report.Line(r, "f32-sum", f32);
        var f32avg = torch.tensor(new float[] { r + 1, 10 * (r + 1), -0.5f });
        comm.AllReduceAverage(f32avg);
        Report.Line(r, "f32-avg", f32avg);

        var bf16 = torch.tensor(new float[] { 1.5f * (r + 1), 256 * (r + 1) }).to(torch.ScalarType.BFloat16);
        comm.AllReduceSum(bf16);
        Report.Line(r, "bf16-sum", bf16);
        var bf16avg = torch.tensor(new float[] { 1.5f * (r + 1), 256 * (r + 1) }).to(torch.ScalarType.BFloat16);
        comm.AllReduceAverage(bf16avg);
        Report.Line(r, "bf16-avg", bf16avg);
        Report.Line(r, "bf16-dtype", bf16avg.dtype.ToString());

        // A transposed view is not contiguous: exercises the staging copy and the write-back.
        var matrix = torch.arange(6, torch.ScalarType.Float32).reshape(2, 3).add(r);
        var transposed = matrix.t();
        comm.AllReduceSum(transposed);
        Report.Line(r, "noncontiguous-sum", matrix);

        var i64 = torch.tensor(new long[] { r, 1L << 40 });
        comm.AllReduceSum(i64);
        Report.Line(r, "i64-sum", i64);

        var gathered = torch.empty(2 * comm.Size, torch.ScalarType.Float32);
        comm.AllGather(torch.tensor(new float[] { 10 * r + 1, 10 * r + 2 }), gathered);
        Report.Line(r, "allgather", gathered);

        var received = torch.empty(4, torch.ScalarType.Int32);
        comm.AllToAll(torch.tensor(new[] { 100 * r, 100 * r + 1, 100 * r + 2, 100 * r + 3 }), received);
        Report.Line(r, "alltoall", received);

        var broadcast = r == 1 ? torch.tensor(new double[] { 7, 8, 9 }) : torch.zeros(3, torch.ScalarType.Float64);
        comm.Broadcast(broadcast, root: 1);
        Report.Line(r, "broadcast", broadcast);

        // Pipeline-style: rank 0 sends activations forward, rank 1 returns them doubled.
        if (r == 0)
        {
            comm.Send(torch.tensor(new float[] { 1, 2, 3 }), destination: 1, tag: 5);
            comm.Send(torch.tensor(new float[] { 0.25f }).to(torch.ScalarType.BFloat16), destination: 1, tag: 6);
            var back = torch.empty(3, torch.ScalarType.Float32);
            comm.Recv(back, source: 1, tag: 7);
            Report.Line(r, "recv", back);
        }
        else if (r == 1)
        {
            var activations = torch.empty(3, torch.ScalarType.Float32);
            comm.Recv(activations, source: 0, tag: 5);
            var small = torch.empty(1, torch.ScalarType.BFloat16);
            comm.Recv(small, source: 0, tag: 6);
            Report.Line(r, "recv", torch.cat([activations, small.to(torch.ScalarType.Float32)]));
            comm.Send(activations.mul(2), destination: 0, tag: 7);
        }

        comm.Barrier();
        Report.Line(r, "bytes-sent", comm.BytesSent.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }
}
