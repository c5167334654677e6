namespace FinQLoRA.Serving;

/// <summary>
/// The tokens one row computes in a prefill forward, and how each sits: prompt positions [start, end) at their own
/// positions, then, when the forward reaches the prompt's end, the fed tokens of each of the row's scoring branches
/// (<see cref="EngineRequest.ScoreBranches"/>) side by side: in the slot one branch after another right after the
/// prompt, but at the RoPE positions that follow the prompt (every branch starts again there), each seeing the prompt
/// and its own earlier tokens only — a tree mask, so that a question's options are scored in one row. A generation
/// row's layout is its prompt chunk, causal. Index i of the layout is slot position start + i; padding past
/// <see cref="Count"/> continues the slot positions and sees the prompt (so that its attention row is never empty).
/// </summary>
internal sealed class PrefillLayout
{
    private readonly int[] _tokens, _rope, _below, _segmentStart, _segmentEnd;

    public PrefillLayout(EngineRequest request, int start, int end)
    {
        var prompt = request.PromptIds;
        bool branches = end == prompt.Length && request.ScoreBranches.Count > 0;
        Start = start;
        PromptLength = prompt.Length;
        Count = end - start + (branches ? request.BranchTokens : 0);
        _tokens = new int[Count];
        _rope = new int[Count];
        _below = new int[Count];
        _segmentStart = new int[Count];
        _segmentEnd = new int[Count];
        for (int p = start; p < end; p++) Set(p - start, prompt[p], p, p + 1, 1, 0);
        BranchFirst = new int[branches ? request.ScoreBranches.Count : 0];
        int i = end - start;
        for (int b = 0; b < BranchFirst.Length; b++)
        {
            var branch = request.ScoreBranches[b];
            BranchFirst[b] = i;
            int slot = start + i;
            for (int j = 0; j < branch.Length - 1; j++, i++)
                Set(i, branch[j], prompt.Length + j, prompt.Length, slot, start + i);
        }
    }

    /// <summary>The prompt position of index 0.</summary>
    public int Start { get; }
    public int PromptLength { get; }
    /// <summary>Tokens computed (prompt chunk plus branch tokens).</summary>
    public int Count { get; }
    /// <summary>Per branch, the index of its first fed token (empty when the layout holds no branches).</summary>
    public int[] BranchFirst { get; }

    /// <summary>Writes row <paramref name="r"/> of a [rows, <paramref name="t"/>] forward: token ids, RoPE positions,
    /// and the keys each query sees (below a bound, or within [segment start, segment end]).</summary>
    public void Fill(int r, int t, int padId, long[] ids, long[] rope, long[] below, long[] segmentStart, long[] segmentEnd)
    {
        for (int c = 0; c < t; c++)
        {
            int at = r * t + c;
            bool real = c < Count;
            ids[at] = real ? _tokens[c] : padId;
            rope[at] = real ? _rope[c] : Start + c;
            below[at] = real ? _below[c] : PromptLength;
            segmentStart[at] = real ? _segmentStart[c] : 1;
            segmentEnd[at] = real ? _segmentEnd[c] : 0;
        }
    }

    private void Set(int i, int token, int rope, int below, int segmentStart, int segmentEnd)
    {
        _tokens[i] = token;
        _rope[i] = rope;
        _below[i] = below;
        _segmentStart[i] = segmentStart;
        _segmentEnd[i] = segmentEnd;
    }
}
