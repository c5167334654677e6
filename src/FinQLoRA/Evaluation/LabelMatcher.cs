namespace FinQLoRA.Evaluation;

/// <summary>
/// Finds the answer label in a free-form output: among the label surface forms (case-insensitive, whole words:
/// not preceded or followed by a letter or digit, so "No" does not match "Not" and "positive" not "positively"),
/// the one starting earliest wins; at the same start the longest wins ("strong negative" over "strong").
/// </summary>
public static class LabelMatcher
{
    /// <summary>The class of an output in which no label was found. It is never a target, so in weighted F1 it
    /// lowers the recall of the true label and adds a zero-support class (weight 0); which string stands for
    /// it cannot change the score.</summary>
    public const string Unmatched = "<unmatched>";

    /// <summary>The class of the earliest label in <paramref name="output"/>, or <see cref="Unmatched"/>.</summary>
    public static string Match(string output, IReadOnlyDictionary<string, string> surfaceToClass)
    {
        int bestStart = int.MaxValue, bestLength = 0;
        string best = Unmatched;
        foreach (var (surface, cls) in surfaceToClass)
        {
            int at = FirstWholeWord(output, surface);
            if (at < 0) continue;
            if (at < bestStart || at == bestStart && surface.Length > bestLength)
            {
                bestStart = at; bestLength = surface.Length; best = cls;
            }
        }
        return best;
    }

    private static int FirstWholeWord(string text, string word)
    {
        for (int at = text.IndexOf(word, StringComparison.OrdinalIgnoreCase); at >= 0;
             at = text.IndexOf(word, at + 1, StringComparison.OrdinalIgnoreCase))
        {
            bool startOk = at == 0 || !char.IsLetterOrDigit(text[at - 1]);
            int end = at + word.Length;
            bool endOk = end == text.Length || !char.IsLetterOrDigit(text[end]);
            if (startOk && endOk) return at;
        }
        return -1;
    }
}
