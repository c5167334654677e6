namespace FinQLoRA.Cli.Parsing;

/// <summary>
/// The known name nearest to one that was typed, for "did you mean": a name that the typed text starts with or that
/// starts with it (<c>temp</c> → <c>temperature</c>, <c>model.gguf</c> → <c>model</c>) comes first, then the fewest
/// edits (insert, delete, substitute, swap two neighbours); leading dashes are ignored; ties go to the name declared first.
/// </summary>
public static class ClosestName
{
    public static string? Find(string typed, IEnumerable<string> known) =>
        known.Select((name, order) => (name, order))
            .OrderBy(k => SharesPrefix(Bare(typed), Bare(k.name)) ? 0 : 1)
            .ThenBy(k => Distance(Bare(typed), Bare(k.name)))
            .ThenBy(k => k.order)
            .Select(k => k.name)
            .FirstOrDefault();

    // the dashes are no part of the name: --m is one letter, not a three-letter stem of --model
    private static string Bare(string name) => name.TrimStart('-');

    // a one- or two-letter stem would "start" half the names, so a prefix counts from three letters
    private static bool SharesPrefix(string a, string b) =>
        Math.Min(a.Length, b.Length) >= 3 && (a.StartsWith(b, StringComparison.OrdinalIgnoreCase) || b.StartsWith(a, StringComparison.OrdinalIgnoreCase));

    /// <summary>Optimal string alignment distance (Damerau–Levenshtein without repeated edits of one substring).</summary>
    public static int Distance(string a, string b)
    {
        a = a.ToLowerInvariant();
        b = b.ToLowerInvariant();
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        return d[a.Length, b.Length];
    }
}
