namespace FinQLoRA.Data.Tasks;

/// <summary>SplitMix64: a tiny generator whose sequence is fixed by this code alone (System.Random's
/// algorithm is an implementation detail), so a seed rebuilds the same data on any runtime.</summary>
internal sealed class SeededRandom(ulong seed)
{
    private ulong _state = seed;

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, n) (the modulo bias is below 2^-58 for the small n used here).</summary>
    public int Next(int n) => (int)(NextUInt64() % (ulong)n);

    public void Shuffle<T>(IList<T> items)
    {
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
