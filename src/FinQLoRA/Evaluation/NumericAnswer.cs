using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace FinQLoRA.Evaluation;

/// <summary>
/// Numeric comparison of answers. Text is canonicalised: whitespace and '$' removed, thousands separators
/// dropped (1,832 → 1832), every number rewritten in shortest form (16116000000.0 → 16116000000,
/// 0.50 → 0.5); other characters (operators, parentheses, '%') stay. A target that is a single number is
/// answered by the first number in the output ("The NPV is 2297.17." answers 2297.17); a target formula
/// "(13723000000 / 110225000000) * 100" must be matched as a whole, numbers compared by value.
/// </summary>
public static partial class NumericAnswer
{
    [GeneratedRegex(@"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")]
    private static partial Regex NumberPattern();

    public static string Canonical(string text)
    {
        string compact = text.Trim().Replace("$", "");
        var sb = new StringBuilder();
        int last = 0;
        foreach (Match m in NumberPattern().Matches(compact))
        {
            sb.Append(RemoveWhitespace(compact[last..m.Index]));
            sb.Append(Number(m.Value));
            last = m.Index + m.Length;
        }
        sb.Append(RemoveWhitespace(compact[last..]));
        return sb.ToString();
    }

    /// <summary>True when the whole text is one number (after trimming and removing '$').</summary>
    public static bool IsSingleNumber(string text)
    {
        string compact = text.Trim().Replace("$", "");
        var m = NumberPattern().Match(compact);
        return m.Success && m.Index == 0 && m.Length == compact.Length;
    }

    /// <summary>The canonical form of the first number in the text, or null.</summary>
    public static string? FirstNumber(string text)
    {
        var m = NumberPattern().Match(text.Replace("$", ""));
        return m.Success ? Number(m.Value) : null;
    }

    /// <summary>The class an output scores as for a target: see the type summary.</summary>
    public static string Prediction(string target, string output) =>
        IsSingleNumber(target) ? FirstNumber(output) ?? "" : Canonical(output);

    private static string Number(string s)
    {
        string plain = s.Replace(",", "");
        if (decimal.TryParse(plain, NumberStyles.Float, CultureInfo.InvariantCulture, out decimal d))
        {
            string r = d.ToString(CultureInfo.InvariantCulture);
            if (r.Contains('.')) r = r.TrimEnd('0').TrimEnd('.');
            return r == "-0" ? "0" : r;
        }
        return double.Parse(plain, CultureInfo.InvariantCulture).ToString("R", CultureInfo.InvariantCulture);
    }

    private static string RemoveWhitespace(string s) => string.Concat(s.Where(c => !char.IsWhiteSpace(c)));
}
