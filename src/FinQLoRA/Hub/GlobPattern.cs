using System.Text;
using System.Text.RegularExpressions;

namespace FinQLoRA.Hub;

/// <summary>
/// <c>--include</c> patterns with huggingface_hub's <c>allow_patterns</c> meaning (Python fnmatch on the whole
/// repo path): <c>*</c> matches any characters including '/', <c>?</c> one character, <c>[abc]</c>/<c>[!abc]</c>
/// a class; a pattern ending in '/' means everything below that folder. So <c>*.json</c> matches
/// <c>config.json</c> and <c>original/params.json</c>, while <c>tokenizer*</c> matches only top-level tokenizer files.
/// </summary>
public sealed class GlobPattern
{
    private readonly Regex _regex;

    public string Text { get; }

    public GlobPattern(string text)
    {
        if (string.IsNullOrWhiteSpace(text))
            throw UserInputException.About($"{new ConfigField("include")} '' is empty; give a pattern such as *.parquet or data/");
        Text = text.EndsWith('/') ? text + "*" : text;
        _regex = new Regex(ToRegex(Text), RegexOptions.CultureInvariant | RegexOptions.Singleline);
    }

    public bool Matches(string path) => _regex.IsMatch(path);

    /// <summary>True when any pattern matches; an empty list matches everything.</summary>
    public static bool MatchesAny(IReadOnlyList<GlobPattern> patterns, string path) =>
        patterns.Count == 0 || patterns.Any(p => p.Matches(path));

    private static string ToRegex(string glob)
    {
        var sb = new StringBuilder("^");
        for (int i = 0; i < glob.Length; i++)
        {
            char c = glob[i];
            if (c == '*') sb.Append(".*");
            else if (c == '?') sb.Append('.');
            else if (c == '[' && glob.IndexOf(']', i + 2) is int end and > 0)
            {
                string body = glob[(i + 1)..end];
                bool negate = body.StartsWith('!');
                if (negate) body = body[1..];
                sb.Append('[').Append(negate ? "^" : "").Append(body.Replace("\\", "\\\\").Replace("[", "\\[")).Append(']');
                i = end;
            }
            else sb.Append(Regex.Escape(c.ToString()));
        }
        return sb.Append('$').ToString();
    }
}
