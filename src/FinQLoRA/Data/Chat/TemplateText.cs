using System.Text;

namespace FinQLoRA.Data.Chat;

/// <summary>
/// A Jinja chat template reduced to the form detection compares against, so that one model's template matches
/// however it was written down: whitespace inside <c>{{ }}</c> and <c>{% %}</c> tags is dropped, string literals are
/// single-quoted, a newline character inside a literal is written <c>\n</c> (Hugging Face files hold both spellings),
/// whitespace-control dashes (<c>{{-</c>, <c>-%}</c>) and comments are removed. Text outside tags, and the inside of
/// literals, are kept as they are: there whitespace is output.
/// </summary>
internal sealed class TemplateText
{
    public TemplateText(string template)
    {
        Raw = template;
        Squashed = Squash(template);
    }

    public string Raw { get; }
    public string Squashed { get; }

    /// <summary>Whether the squashed template holds <paramref name="squashed"/> (written in the squashed form).</summary>
    public bool Has(string squashed) => Squashed.Contains(squashed, StringComparison.Ordinal);

    /// <summary>The first <paramref name="length"/> characters, on one line, for messages.</summary>
    public string Excerpt(int length = 60) =>
        Raw[..Math.Min(length, Raw.Length)].ReplaceLineEndings(" ") + (Raw.Length > length ? "…" : "");

    private static string Squash(string t)
    {
        var s = new StringBuilder(t.Length);
        int i = 0;
        while (i < t.Length)
        {
            if (!(At(t, i, "{{") || At(t, i, "{%") || At(t, i, "{#"))) { s.Append(t[i++]); continue; }
            char kind = t[i + 1];
            bool dash = i + 2 < t.Length && t[i + 2] == '-';
            // Jinja's whitespace control as transformers sets it (lstrip_blocks, trim_blocks), so the text between
            // tags is what Jinja would output.
            if (dash) TrimEnd(s, newlines: true);
            else if (kind != '{' && OnlySpacesSinceLineStart(s)) TrimEnd(s, newlines: false);
            i += dash || (i + 2 < t.Length && t[i + 2] == '+') ? 3 : 2;
            bool dashClose;
            if (kind == '#')
            {
                int end = t.IndexOf("#}", i, StringComparison.Ordinal);
                dashClose = end > 0 && t[end - 1] == '-';
                i = end < 0 ? t.Length : end + 2;
            }
            else
            {
                s.Append('{').Append(kind);
                i = SquashTag(t, i, s, out dashClose);
            }
            if (dashClose) while (i < t.Length && char.IsWhiteSpace(t[i])) i++;
            else if (kind != '{' && i < t.Length && t[i] == '\n') i++;
        }
        return s.ToString();
    }

    /// <summary>The inside of a tag from <paramref name="i"/> through its closing <c>}}</c> or <c>%}</c>.</summary>
    private static int SquashTag(string t, int i, StringBuilder s, out bool dashClose)
    {
        dashClose = false;
        while (i < t.Length)
        {
            char c = t[i];
            if (c is '-' or '+' && (At(t, i + 1, "}}") || At(t, i + 1, "%}"))) { dashClose = c == '-'; i++; continue; }
            if (At(t, i, "}}") || At(t, i, "%}")) { s.Append(t, i, 2); return i + 2; }
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (c is '\'' or '"') { i = SquashLiteral(t, i, s); continue; }
            s.Append(c);
            i++;
        }
        return i;
    }

    private static int SquashLiteral(string t, int i, StringBuilder s)
    {
        char quote = t[i++];
        s.Append('\'');
        while (i < t.Length && t[i] != quote)
        {
            if (t[i] == '\\' && i + 1 < t.Length) { s.Append(t, i, 2); i += 2; }
            else if (t[i] == '\n') { s.Append("\\n"); i++; }
            else s.Append(t[i++]);
        }
        s.Append('\'');
        return i + 1;
    }

    private static void TrimEnd(StringBuilder s, bool newlines)
    {
        while (s.Length > 0 && (s[^1] is ' ' or '\t' || (newlines && char.IsWhiteSpace(s[^1])))) s.Length--;
    }

    private static bool OnlySpacesSinceLineStart(StringBuilder s)
    {
        for (int k = s.Length - 1; k >= 0 && s[k] != '\n'; k--)
            if (s[k] is not (' ' or '\t')) return false;
        return true;
    }

    private static bool At(string t, int i, string what) => i + what.Length <= t.Length && string.CompareOrdinal(t, i, what, 0, what.Length) == 0;
}
