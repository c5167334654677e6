namespace FinQLoRA.Inference;

/// <summary>Left padding of a batch of prompts, [pad … pad, prompt], so that every sequence's next token sits in the
/// last column; the mask marks real tokens (1) and padding (0).</summary>
internal static class LeftPadding
{
    /// <returns>row-major ids and mask [B, longest]</returns>
    public static (long[] Ids, long[] Mask, int Longest) Build(IReadOnlyList<int[]> prompts, int padId)
    {
        int b = prompts.Count, longest = prompts.Max(p => p.Length);
        var ids = new long[b * longest];
        var mask = new long[b * longest];
        for (int r = 0; r < b; r++)
        {
            int offset = longest - prompts[r].Length;
            for (int c = 0; c < longest; c++)
            {
                ids[r * longest + c] = c < offset ? padId : prompts[r][c - offset];
                mask[r * longest + c] = c < offset ? 0 : 1;
            }
        }
        return (ids, mask, longest);
    }
}
