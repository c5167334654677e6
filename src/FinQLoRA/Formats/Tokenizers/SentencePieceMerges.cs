using System.Text;

namespace FinQLoRA.Formats.Tokenizers;

/// <summary>
/// The BPE merges implied by a SentencePiece vocabulary's scores, computed exactly as transformers'
/// <c>convert_slow_tokenizer.generate_merges</c> does: every split (l, r) of a piece with both halves in the vocabulary
/// is a candidate (ordered by (id(l), id(r)) within the piece), then all candidates are stably sorted by
/// (score of the piece, len(l), len(r)) descending. Lengths and splits count Unicode code points, as Python does.
/// </summary>
public static class SentencePieceMerges
{
    public static List<string> Generate(IReadOnlyList<string> tokens, IReadOnlyList<float> scores)
    {
        var id = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Count; i++) id[tokens[i]] = i; // later duplicates win, as in a Python dict
        var candidates = new List<(string L, string R, float Score, int LenL, int LenR)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Count; i++)
        {
            string piece = tokens[i];
            if (!seen.Add(piece)) continue;
            float score = scores[id[piece]];
            var runes = piece.EnumerateRunes().ToArray();
            var local = new List<(string L, string R, float Score, int LenL, int LenR)>();
            for (int cut = 1; cut < runes.Length; cut++)
            {
                string l = Join(runes, 0, cut), r = Join(runes, cut, runes.Length);
                if (id.ContainsKey(l) && id.ContainsKey(r)) local.Add((l, r, score, cut, runes.Length - cut));
            }
            candidates.AddRange(local.OrderBy(c => id[c.L]).ThenBy(c => id[c.R]));
        }
        return candidates
            .OrderByDescending(c => c.Score).ThenByDescending(c => c.LenL).ThenByDescending(c => c.LenR)
            .Select(c => $"{c.L} {c.R}")
            .ToList();
    }

    private static string Join(Rune[] runes, int from, int to)
    {
        var sb = new StringBuilder();
        for (int i = from; i < to; i++) sb.Append(runes[i].ToString());
        return sb.ToString();
    }
}
