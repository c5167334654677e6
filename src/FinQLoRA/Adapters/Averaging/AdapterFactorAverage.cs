using FinQLoRA.Formats.Checkpoints;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters.Averaging;

/// <summary>
/// The weighted average of compatible adapter files, tensor by tensor (FedAvg on the LoRA factors):
/// X̄ = Σᵢ wᵢ·Xᵢ with Σᵢ wᵢ = 1, accumulated in fp64 and written in the inputs' dtype (F32 where they differ).
/// When every A is bit-identical (FFA-LoRA) A is copied as it is, so ΔW̄ = s·(Σᵢ wᵢBᵢ)·A = Σᵢ wᵢ·(s·Bᵢ·A) exactly;
/// otherwise (Σᵢ wᵢBᵢ)(Σᵢ wᵢAᵢ) is not the average of the products Bᵢ·Aᵢ.
/// </summary>
public static class AdapterFactorAverage
{
    /// <returns>every tensor of the first input's file, by its key, averaged; the caller disposes them</returns>
    public static List<KeyValuePair<string, Tensor>> Of(IReadOnlyList<AdapterToAverage> adapters, IReadOnlyList<double> weights, bool sharedA)
    {
        var result = new List<KeyValuePair<string, Tensor>>();
        try
        {
            foreach (var entry in adapters[0].Weights.Entries)
            {
                bool isA = PeftAdapterKey.TryParse(entry.Name, out _)?.Part == PeftAdapterKey.A;
                result.Add(new(entry.Name, isA && sharedA ? adapters[0].Weights.Read(entry.Name) : Average(adapters, weights, entry)));
            }
        }
        catch
        {
            foreach (var (_, t) in result) t.Dispose();
            throw;
        }
        return result;
    }

    private static Tensor Average(IReadOnlyList<AdapterToAverage> adapters, IReadOnlyList<double> weights, TensorEntry entry)
    {
        using var scope = NewDisposeScope();
        Tensor? sum = null;
        for (int i = 0; i < adapters.Count; i++)
        {
            var term = adapters[i].Weights.Read(entry.Name).to(ScalarType.Float64) * weights[i];
            sum = sum is null ? term : sum + term;
        }
        var dtype = adapters.All(a => a.Weights.Entry(entry.Name).DType == entry.DType) ? entry.DType : ScalarType.Float32;
        return sum!.to(dtype).contiguous().MoveToOuterDisposeScope();
    }
}
