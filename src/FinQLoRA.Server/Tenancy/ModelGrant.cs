using System.IO.Enumeration;

namespace FinQLoRA.Server.Tenancy;

/// <summary>
/// The served names a key may use: names or globs (<c>*</c> any run of characters, <c>?</c> one), matched
/// case-sensitively against the whole name as requests spell it. The base's served name is included only when a
/// pattern matches it (<c>*</c> matches everything). Other glob syntaxes (<c>[a-z]</c>, <c>{a,b}</c>, <c>\</c>) are
/// refused rather than read literally, so a pattern never means less than its author thought.
/// </summary>
public sealed class ModelGrant
{
    private readonly string[] _patterns;

    private ModelGrant(string[] patterns) => _patterns = patterns;

    /// <summary>Every served name.</summary>
    public static ModelGrant All { get; } = new(["*"]);

    public IReadOnlyList<string> Patterns => _patterns;

    /// <summary>The grant of these patterns; throws <see cref="ArgumentException"/> with the reason for the first bad one
    /// (the keys file names where it stands).</summary>
    public static ModelGrant Of(IReadOnlyList<string> patterns)
    {
        if (patterns.Count == 0) throw new ArgumentException("the list is empty, so the key could use no model; list names or globs ('desk-a-*'), or '*' for all");
        foreach (string p in patterns)
            if (Problem(p) is { } problem) throw new ArgumentException(problem);
        return new ModelGrant([.. patterns]);
    }

    /// <summary>Why <paramref name="pattern"/> is not a model name or glob, or null when it is one.</summary>
    public static string? Problem(string pattern)
    {
        if (pattern.Length == 0) return "an empty pattern matches nothing; remove it or give a name or glob";
        if (pattern.Length > 256) return $"'{pattern[..32]}…' is longer than 256 characters";
        foreach (char c in pattern)
        {
            if (char.IsWhiteSpace(c) || char.IsControl(c)) return $"'{Printable(pattern)}' holds a blank or control character; model names have none";
            if (c is '[' or ']' or '{' or '}' or '\\' or ',')
                return $"'{pattern}' uses '{c}', which is not supported: only '*' (any characters) and '?' (one character) are wildcards; list each name or glob separately";
        }
        return null;
    }

    /// <summary>Whether a request may use the served name <paramref name="model"/>.</summary>
    public bool Allows(string model)
    {
        foreach (string p in _patterns)
            if (FileSystemName.MatchesSimpleExpression(p, model, ignoreCase: false)) return true;
        return false;
    }

    public override string ToString() => string.Join(",", _patterns);

    private static string Printable(string s) => string.Concat(s.Select(c => char.IsControl(c) || char.IsWhiteSpace(c) ? $"\\u{(int)c:x4}" : c.ToString()));
}
