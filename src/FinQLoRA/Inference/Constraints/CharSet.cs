namespace FinQLoRA.Inference.Constraints;

/// <summary>
/// A set of Unicode scalar values as sorted, disjoint, non-adjacent inclusive ranges. Surrogates (U+D800–U+DFFF) are
/// never members: they are not characters and have no UTF-8 encoding, so complements skip them.
/// </summary>
public sealed class CharSet
{
    public const int MaxCodepoint = 0x10FFFF;
    private const int SurrogateLo = 0xD800, SurrogateHi = 0xDFFF;

    private CharSet(IReadOnlyList<(int Lo, int Hi)> ranges) => Ranges = ranges;

    /// <summary>Sorted, disjoint, non-adjacent inclusive ranges.</summary>
    public IReadOnlyList<(int Lo, int Hi)> Ranges { get; }

    public bool IsEmpty => Ranges.Count == 0;

    public static CharSet Empty { get; } = new([]);

    /// <summary>Every scalar value.</summary>
    public static CharSet Any { get; } = Of((0, MaxCodepoint));

    public static CharSet Single(int codepoint) => Of((codepoint, codepoint));

    /// <summary>The union of <paramref name="ranges"/> (in any order, overlapping or not), less the surrogates.</summary>
    public static CharSet Of(params IEnumerable<(int Lo, int Hi)> ranges)
    {
        var sorted = ranges.Where(r => r.Lo <= r.Hi).OrderBy(r => r.Lo).ToList();
        var merged = new List<(int Lo, int Hi)>();
        foreach (var (lo, hi) in sorted)
        {
            if (merged.Count > 0 && lo <= merged[^1].Hi + 1) merged[^1] = (merged[^1].Lo, Math.Max(merged[^1].Hi, hi));
            else merged.Add((lo, hi));
        }
        var result = new List<(int Lo, int Hi)>();
        foreach (var (lo, hi) in merged)
        {
            // cut the surrogate block out of any range that spans it
            if (hi < SurrogateLo || lo > SurrogateHi) result.Add((lo, hi));
            else
            {
                if (lo < SurrogateLo) result.Add((lo, SurrogateLo - 1));
                if (hi > SurrogateHi) result.Add((SurrogateHi + 1, hi));
            }
        }
        return new CharSet(result);
    }

    public CharSet Union(CharSet other) => Of(Ranges.Concat(other.Ranges));

    /// <summary>Every scalar value not in this set.</summary>
    public CharSet Complement()
    {
        var result = new List<(int, int)>();
        int next = 0;
        foreach (var (lo, hi) in Ranges)
        {
            if (lo > next) result.Add((next, lo - 1));
            next = hi + 1;
        }
        if (next <= MaxCodepoint) result.Add((next, MaxCodepoint));
        return Of(result);
    }

    public CharSet Intersect(CharSet other) => Complement().Union(other.Complement()).Complement();

    public CharSet Except(CharSet other) => Intersect(other.Complement());

    public bool Contains(int codepoint) => Ranges.Any(r => r.Lo <= codepoint && codepoint <= r.Hi);
}
