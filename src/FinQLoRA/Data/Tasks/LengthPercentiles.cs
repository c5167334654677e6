namespace FinQLoRA.Data.Tasks;

/// <summary>Length percentiles (nearest-rank) of a set of texts.</summary>
public sealed record LengthPercentiles(int Min, int P50, int P90, int P95, int P99, int Max, double Mean)
{
    public static LengthPercentiles Of(IReadOnlyList<int> lengths)
    {
        if (lengths.Count == 0) return new LengthPercentiles(0, 0, 0, 0, 0, 0, 0);
        var sorted = lengths.Order().ToArray();
        int Rank(double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
        return new LengthPercentiles(sorted[0], Rank(0.5), Rank(0.9), Rank(0.95), Rank(0.99), sorted[^1], sorted.Average());
    }
}
