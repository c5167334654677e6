using FinQLoRA.Distributed;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>Scalars summed over all ranks: the step's loss and token counts, and the agreements (stop, early stop)
/// that every rank must reach together so that all of them leave the loop after the same step.</summary>
public static class RankSums
{
    public static double Of(ICommunicator comm, double value) => Of(comm, value, 0, 0).A;

    /// <summary>Three sums in one all-reduce (float64: token counts stay exact far beyond any run).</summary>
    public static (double A, double B, double C) Of(ICommunicator comm, double a, double b, double c)
    {
        if (comm.Size == 1) return (a, b, c);
        using var t = tensor(new[] { a, b, c }, ScalarType.Float64);
        comm.AllReduceSum(t);
        var sums = t.data<double>().ToArray();
        return (sums[0], sums[1], sums[2]);
    }
}
