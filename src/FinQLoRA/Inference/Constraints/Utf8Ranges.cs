namespace FinQLoRA.Inference.Constraints;

/// <summary>
/// Splits a range of scalar values into sequences of byte ranges whose concatenations are exactly the UTF-8 encodings
/// of the range (the split RE2 and Rust's utf8-ranges use): first at the encoding-length boundaries (U+007F, U+07FF,
/// U+FFFF), then wherever the range does not cover whole blocks of continuation bytes, until every piece has the same
/// leading bytes' range structure. [U+0000, U+10FFFF] becomes 7 sequences (plus the surrogate gap).
/// </summary>
public static class Utf8Ranges
{
    private static readonly int[] LengthEnds = [0x7F, 0x7FF, 0xFFFF, CharSet.MaxCodepoint];

    /// <summary>The byte-range sequences of <paramref name="set"/>; each sequence is one (lo, hi) per byte position.</summary>
    public static List<(byte Lo, byte Hi)[]> Of(CharSet set)
    {
        var result = new List<(byte, byte)[]>();
        foreach (var (lo, hi) in set.Ranges) Split(lo, hi, result);
        return result;
    }

    private static void Split(int lo, int hi, List<(byte, byte)[]> result)
    {
        if (lo > hi) return;
        // one encoding length per piece
        foreach (int end in LengthEnds)
            if (lo <= end && hi > end)
            {
                Split(lo, end, result);
                Split(end + 1, hi, result);
                return;
            }
        int length = Length(lo);
        // the low i*6 bits are continuation bytes: a piece must cover whole blocks of them, or lie within one
        for (int i = 1; i < length; i++)
        {
            int m = (1 << (6 * i)) - 1;
            if ((lo & ~m) == (hi & ~m)) continue;
            if ((lo & m) != 0)
            {
                Split(lo, lo | m, result);
                Split((lo | m) + 1, hi, result);
                return;
            }
            if ((hi & m) != m)
            {
                Split(lo, (hi & ~m) - 1, result);
                Split(hi & ~m, hi, result);
                return;
            }
        }
        byte[] a = Encode(lo), b = Encode(hi);
        var seq = new (byte, byte)[length];
        for (int k = 0; k < length; k++) seq[k] = (a[k], b[k]);
        result.Add(seq);
    }

    private static int Length(int cp) => cp <= 0x7F ? 1 : cp <= 0x7FF ? 2 : cp <= 0xFFFF ? 3 : 4;

    private static byte[] Encode(int cp) => Length(cp) switch
    {
        1 => [(byte)cp],
        2 => [(byte)(0xC0 | (cp >> 6)), (byte)(0x80 | (cp & 0x3F))],
        3 => [(byte)(0xE0 | (cp >> 12)), (byte)(0x80 | ((cp >> 6) & 0x3F)), (byte)(0x80 | (cp & 0x3F))],
        _ => [(byte)(0xF0 | (cp >> 18)), (byte)(0x80 | ((cp >> 12) & 0x3F)), (byte)(0x80 | ((cp >> 6) & 0x3F)), (byte)(0x80 | (cp & 0x3F))],
    };
}
