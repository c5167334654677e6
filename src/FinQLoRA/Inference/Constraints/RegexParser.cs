using System.Globalization;

namespace FinQLoRA.Inference.Constraints;

/// <summary>
/// Parses the regex subset clients send for structured outputs into a <see cref="Pattern"/> that the whole output must
/// match (anchors are implicit; <c>^</c> first and <c>$</c> last are accepted and change nothing): literals, escapes
/// (<c>\d \w \s \D \W \S</c> ASCII as in ECMAScript, <c>\n \t \r \f \v \0 \xHH \uXXXX</c>, any escaped punctuation),
/// classes with ranges and negation, <c>.</c> (any character but <c>\n</c>), groups <c>( )</c>, <c>(?: )</c> and
/// named groups (as plain groups), alternation, and the quantifiers <c>* + ? {m} {m,} {m,n}</c> (lazy forms read as
/// greedy: only the language matters). Backreferences, lookaround, word boundaries, inline flags, Unicode property
/// classes and anchors elsewhere are refused with their 0-based position, as are syntax errors.
/// </summary>
public sealed class RegexParser
{
    /// <summary>The largest count a <c>{m,n}</c> quantifier may give (each repetition is a copy in the automaton).</summary>
    public const int MaxRepeat = 1000;

    private static readonly CharSet Digit = CharSet.Of(('0', '9'));
    private static readonly CharSet Word = CharSet.Of(('0', '9'), ('A', 'Z'), ('a', 'z'), ('_', '_'));
    private static readonly CharSet Space = CharSet.Of((' ', ' '), ('\t', '\r'));
    private static readonly CharSet AnyButNewline = CharSet.Single('\n').Complement();

    private readonly string _text;
    private int _pos;

    private RegexParser(string text) => _text = text;

    public static Pattern Parse(string regex)
    {
        var parser = new RegexParser(regex);
        if (regex.StartsWith('^')) parser._pos = 1;
        var result = parser.Alternation(topLevel: true);
        if (parser._pos < regex.Length)
            throw ConstraintException.InRegex("unmatched ')'", parser._pos);
        return result;
    }

    private bool AtEnd => _pos >= _text.Length;
    private char Peek => _text[_pos];

    private Pattern Alternation(bool topLevel)
    {
        var alternatives = new List<Pattern> { Concatenation(topLevel) };
        while (!AtEnd && Peek == '|')
        {
            _pos++;
            alternatives.Add(Concatenation(topLevel));
        }
        return Pattern.AnyOf(alternatives);
    }

    private Pattern Concatenation(bool topLevel)
    {
        var parts = new List<Pattern>();
        while (!AtEnd && Peek != '|' && Peek != ')')
        {
            if (Peek == '$' && topLevel && _pos == _text.Length - 1)
            {
                _pos++;
                break;
            }
            parts.Add(Quantified());
        }
        return parts.Count == 1 ? parts[0] : new Pattern.Sequence(parts);
    }

    private Pattern Quantified()
    {
        var atom = Atom();
        if (AtEnd) return atom;
        if (TryQuantifier(out int min, out int? max))
        {
            if (!AtEnd && Peek == '?') _pos++; // lazy: the same language
            if (!AtEnd && (Peek is '*' or '+' or '?' || (Peek == '{' && LooksLikeCount())))
                throw ConstraintException.InRegex("nested quantifier (possessive and stacked quantifiers are not supported)", _pos);
            return new Pattern.Repeat(atom, min, max);
        }
        return atom;
    }

    /// <summary>Reads <c>* + ? {m} {m,} {m,n}</c> at the current position, if one is there.</summary>
    private bool TryQuantifier(out int min, out int? max)
    {
        (min, max) = (0, null);
        switch (Peek)
        {
            case '*': _pos++; return true;
            case '+': _pos++; min = 1; return true;
            case '?': _pos++; max = 1; return true;
            case '{' when LooksLikeCount():
            {
                int at = _pos;
                int close = _text.IndexOf('}', _pos);
                string body = _text[(_pos + 1)..close];
                _pos = close + 1;
                int comma = body.IndexOf(',');
                min = Count(comma < 0 ? body : body[..comma], at);
                max = comma < 0 ? min : comma == body.Length - 1 ? null : Count(body[(comma + 1)..], at);
                if (max < min) throw ConstraintException.InRegex($"quantifier {{{body}}} has its maximum below its minimum", at);
                return true;
            }
            default: return false;
        }
    }

    /// <summary>Whether a <c>{</c> here starts a count (<c>{3}</c>, <c>{2,}</c>, <c>{2,5}</c>); otherwise it is a
    /// literal brace, as in ECMAScript and .NET.</summary>
    private bool LooksLikeCount()
    {
        int i = _pos + 1, digits = 0;
        while (i < _text.Length && char.IsAsciiDigit(_text[i])) { i++; digits++; }
        if (digits == 0) return false;
        if (i < _text.Length && _text[i] == ',')
        {
            i++;
            while (i < _text.Length && char.IsAsciiDigit(_text[i])) i++;
        }
        return i < _text.Length && _text[i] == '}';
    }

    private static int Count(string digits, int at)
    {
        if (!int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n > MaxRepeat)
            throw ConstraintException.InRegex($"repetition count '{digits}' is above the supported {MaxRepeat}", at);
        return n;
    }

    private Pattern Atom()
    {
        int at = _pos;
        char c = Peek;
        switch (c)
        {
            case '(': return Group();
            case '[': return new Pattern.Chars(Class());
            case '.': _pos++; return new Pattern.Chars(AnyButNewline);
            case '\\': return new Pattern.Chars(Escape(inClass: false));
            case '*' or '+' or '?':
                throw ConstraintException.InRegex($"quantifier '{c}' has nothing to repeat", at);
            case '{' when LooksLikeCount():
                throw ConstraintException.InRegex("quantifier '{' has nothing to repeat", at);
            case '^':
                throw ConstraintException.InRegex("anchor '^' is supported only at the start of the regex", at);
            case '$':
                throw ConstraintException.InRegex("anchor '$' is supported only at the end of the regex", at);
            default:
                return new Pattern.Chars(CharSet.Single(Literal()));
        }
    }

    /// <summary>One literal character (a surrogate pair is one character).</summary>
    private int Literal()
    {
        if (char.IsHighSurrogate(Peek) && _pos + 1 < _text.Length && char.IsLowSurrogate(_text[_pos + 1]))
        {
            int cp = char.ConvertToUtf32(Peek, _text[_pos + 1]);
            _pos += 2;
            return cp;
        }
        if (char.IsSurrogate(Peek)) throw ConstraintException.InRegex("unpaired UTF-16 surrogate", _pos);
        return _text[_pos++];
    }

    private Pattern Group()
    {
        int open = _pos;
        _pos++;
        if (!AtEnd && Peek == '?')
        {
            string rest = _text[_pos..];
            if (rest.StartsWith("?:", StringComparison.Ordinal)) _pos += 2;
            else if (rest.StartsWith("?=", StringComparison.Ordinal) || rest.StartsWith("?!", StringComparison.Ordinal)
                     || rest.StartsWith("?<=", StringComparison.Ordinal) || rest.StartsWith("?<!", StringComparison.Ordinal))
                throw ConstraintException.InRegex("lookaround is not supported", open);
            else if (rest.StartsWith("?<", StringComparison.Ordinal) || rest.StartsWith("?P<", StringComparison.Ordinal) || rest.StartsWith("?'", StringComparison.Ordinal))
            {
                char close = rest[1] == '\'' ? '\'' : '>';
                int end = _text.IndexOf(close, _pos + (rest[1] == 'P' ? 3 : 2));
                if (end < 0) throw ConstraintException.InRegex("unterminated group name", open);
                _pos = end + 1; // a named group matches as a plain one
            }
            else if (rest.StartsWith("?>", StringComparison.Ordinal))
                throw ConstraintException.InRegex("atomic groups are not supported", open);
            else if (rest.StartsWith("?#", StringComparison.Ordinal))
                throw ConstraintException.InRegex("comments are not supported", open);
            else
                throw ConstraintException.InRegex("inline flags and other '(?' constructs are not supported", open);
        }
        var inner = Alternation(topLevel: false);
        if (AtEnd || Peek != ')') throw ConstraintException.InRegex("missing ')' for the group opened", open);
        _pos++;
        return inner;
    }

    private CharSet Class()
    {
        int open = _pos;
        _pos++;
        bool negated = !AtEnd && Peek == '^';
        if (negated) _pos++;
        var set = CharSet.Empty;
        bool first = true;
        while (true)
        {
            if (AtEnd) throw ConstraintException.InRegex("missing ']' for the character class opened", open);
            if (Peek == ']' && !first) break;
            first = false;
            if (Peek == '-' && _pos + 1 < _text.Length && _text[_pos + 1] == '[')
                throw ConstraintException.InRegex("character class subtraction is not supported", _pos);
            if (Peek == '[' && _pos + 1 < _text.Length && _text[_pos + 1] == ':')
                throw ConstraintException.InRegex("POSIX classes ([:alpha:]) are not supported", _pos);
            int itemAt = _pos;
            var (lo, loSet) = ClassAtom();
            if (loSet is null && !AtEnd && Peek == '-' && _pos + 1 < _text.Length && _text[_pos + 1] != ']')
            {
                _pos++;
                var (hi, hiSet) = ClassAtom();
                if (hiSet is not null) throw ConstraintException.InRegex("a class escape cannot end a range", itemAt);
                if (hi < lo) throw ConstraintException.InRegex("character range is out of order", itemAt);
                set = set.Union(CharSet.Of((lo, hi)));
            }
            else set = set.Union(loSet ?? CharSet.Single(lo));
        }
        _pos++;
        return negated ? set.Complement() : set;
    }

    /// <summary>One character of a class, or a class escape (<c>\d</c> …) as a set.</summary>
    private (int Char, CharSet? Set) ClassAtom()
    {
        if (Peek != '\\') return (Literal(), null);
        char kind = _pos + 1 < _text.Length ? _text[_pos + 1] : '\0';
        var set = Escape(inClass: true);
        return IsClassEscape(kind) ? (0, set) : (set.Ranges[0].Lo, null);
    }

    private static bool IsClassEscape(char c) => c is 'd' or 'D' or 'w' or 'W' or 's' or 'S';

    private CharSet Escape(bool inClass)
    {
        int at = _pos;
        _pos++;
        if (AtEnd) throw ConstraintException.InRegex("the regex ends with a lone '\\'", at);
        char c = _text[_pos++];
        switch (c)
        {
            case 'd': return Digit;
            case 'D': return Digit.Complement();
            case 'w': return Word;
            case 'W': return Word.Complement();
            case 's': return Space;
            case 'S': return Space.Complement();
            case 'n': return CharSet.Single('\n');
            case 't': return CharSet.Single('\t');
            case 'r': return CharSet.Single('\r');
            case 'f': return CharSet.Single('\f');
            case 'v': return CharSet.Single('\v');
            case '0' when AtEnd || !char.IsAsciiDigit(Peek): return CharSet.Single(0);
            case 'b' when inClass: return CharSet.Single('\b');
            case 'b' or 'B': throw ConstraintException.InRegex($"word boundary '\\{c}' is not supported", at);
            case 'A' or 'z' or 'Z' or 'G': throw ConstraintException.InRegex($"anchor '\\{c}' is not supported", at);
            case 'p' or 'P': throw ConstraintException.InRegex($"Unicode property class '\\{c}' is not supported", at);
            case 'k': throw ConstraintException.InRegex("backreference '\\k' is not supported", at);
            case >= '1' and <= '9': throw ConstraintException.InRegex($"backreference '\\{c}' is not supported", at);
            case 'x': return CharSet.Single(Hex(2, at));
            case 'u': return CharSet.Single(Hex(4, at));
            case 'c': throw ConstraintException.InRegex("control escapes '\\c' are not supported", at);
            default:
                if (char.IsAsciiLetterOrDigit(c)) throw ConstraintException.InRegex($"unknown escape '\\{c}'", at);
                _pos--;
                return CharSet.Single(Literal()); // escaped punctuation or any other character stands for itself
        }
    }

    private int Hex(int digits, int at)
    {
        if (_pos + digits > _text.Length || !int.TryParse(_text.AsSpan(_pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int value))
            throw ConstraintException.InRegex($"escape '\\{_text[at + 1]}' needs {digits} hex digits", at);
        _pos += digits;
        if (value is >= 0xD800 and <= 0xDFFF) throw ConstraintException.InRegex("escape names a UTF-16 surrogate, which is not a character", at);
        return value;
    }
}
