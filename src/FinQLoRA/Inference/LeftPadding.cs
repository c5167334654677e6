namespace FinQLoRA.Inference;

/// <summary>Left padding of a batch of prompts, [pad … pad, prompt], so that every sequence's next token sits in the
/// last column; the mask marks real tokens (1) and padding (0).</summary>
internal static class LeftPadding
{
    /// <returns>row-major ids and mask [B, longest]</returns>
    public static (long[] Ids, long[] Mask, int Longest) Build(IReadOnlyList<int[]> prompts, int padId) =>
        Build(prompts.Select(p => p.Length).ToArray(), (r, c) => prompts[r][c], padId);

    /// <summary>The mask alone, for pipeline stages that know only the prompt lengths.</summary>
    public static long[] Mask(IReadOnlyList<int> lengths) => Build(lengths, (_, _) => 0, 0).Mask;

    private static (long[] Ids, long[] Mask, int Longest) Build(IReadOnlyList<int> lengths, Func<int, int, int> token, int padId)
    {
        int b = lengths.Count, longest = lengths.Max();
        var ids = new long[b * longest];
        var mask = new long[b * longest];
        for (int r = 0; r < b; r++)
        {
            int offset = longest - lengths[r];
            for (int c = 0; c < longest; c++)
            {
                ids[r * longest + c] = c < offset ? padId : token(r, c - offset);
                mask[r * longest + c] = c < offset ? 0 : 1;
            }
        }
        return (ids, mask, longest);
    }
}
