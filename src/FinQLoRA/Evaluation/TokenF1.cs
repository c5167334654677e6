using System.Text;

namespace FinQLoRA.Evaluation;

/// <summary>
/// SQuAD's answer similarity: both texts lower-cased, punctuation and the articles a/an/the removed,
/// whitespace-tokenised; F1 of the bag-of-tokens overlap. Chosen for xbrl_term and FinanceBench because it
/// needs no model, is the standard for short free-text answers, and (unlike ROUGE-L) does not punish a correct
/// definition for ordering its clauses differently. Exact match is reported next to it as accuracy.
/// </summary>
public static class TokenF1
{
    public static double Compute(string reference, string candidate)
    {
        var r = Tokens(reference);
        var c = Tokens(candidate);
        if (r.Count == 0 || c.Count == 0) return r.Count == c.Count ? 1 : 0;
        var counts = r.GroupBy(t => t).ToDictionary(g => g.Key, g => g.Count());
        int common = 0;
        foreach (string t in c)
            if (counts.TryGetValue(t, out int n) && n > 0) { counts[t] = n - 1; common++; }
        if (common == 0) return 0;
        double precision = (double)common / c.Count, recall = (double)common / r.Count;
        return 2 * precision * recall / (precision + recall);
    }

    public static bool ExactMatch(string reference, string candidate) => Tokens(reference).SequenceEqual(Tokens(candidate));

    public static List<string> Tokens(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (char c in text.ToLowerInvariant())
            sb.Append(char.IsPunctuation(c) || char.IsSymbol(c) ? ' ' : c);
        return sb.ToString().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
            .Where(t => t is not ("a" or "an" or "the")).ToList();
    }
}
