using System.Text.Encodings.Web;
using System.Text.Json;

namespace FinQLoRA.Inference.Constraints;

/// <summary>
/// JSON's lexical and structural pieces as <see cref="Pattern"/> combinators, with the limits that keep the
/// automaton finite and a weak model from wandering:
/// <list type="bullet">
/// <item>whitespace between tokens (<see cref="Whitespace"/>): nothing, one space, or one newline followed by 0 to
/// <see cref="MaxIndent"/> spaces; only after <c>{ [ , :</c> and before <c>} ]</c>, never before the value or after it;</item>
/// <item>numbers: at most <see cref="MaxDigits"/> digits before and after the point, at most 2 exponent digits (so
/// every number fits a double);</item>
/// <item><c>\u</c> escapes never name a UTF-16 surrogate (a lone one is not a character).</item>
/// </list>
/// </summary>
public static class JsonGrammar
{
    public const int MaxIndent = 16;
    public const int MaxDigits = 15;

    /// <summary>Characters a JSON string may hold unescaped: everything but <c>"</c>, <c>\</c> and controls below U+0020.</summary>
    public static CharSet Unescaped { get; } = CharSet.Of((0x20, CharSet.MaxCodepoint)).Except(CharSet.Of(('"', '"'), ('\\', '\\')));

    public static Pattern Whitespace { get; } = Pattern.AnyOf(
        Pattern.Empty,
        Pattern.Literal(" "),
        Pattern.Of(Pattern.Literal("\n"), new Pattern.Repeat(Pattern.Literal(" "), 0, MaxIndent)));

    private static readonly Pattern Digit = new Pattern.Chars(CharSet.Of(('0', '9')));
    private static readonly Pattern Hex = new Pattern.Chars(CharSet.Of(('0', '9'), ('A', 'F'), ('a', 'f')));

    private static readonly Pattern D = new Pattern.Chars(CharSet.Of(('D', 'D'), ('d', 'd')));

    /// <summary>\uXXXX outside D800–DFFF (a first digit other than d, or d followed by 0–7), or a surrogate pair
    /// written as two escapes (\uD800–\uDBFF then \uDC00–\uDFFF): never a lone surrogate, which is no character.</summary>
    private static readonly Pattern UnicodeEscape = Pattern.Of(Pattern.Literal("u"), Pattern.AnyOf(
        Pattern.Of(new Pattern.Chars(CharSet.Of(('0', '9'), ('A', 'C'), ('a', 'c'), ('E', 'F'), ('e', 'f'))), Hex, Hex, Hex),
        Pattern.Of(D, new Pattern.Chars(CharSet.Of(('0', '7'))), Hex, Hex),
        Pattern.Of(D, new Pattern.Chars(CharSet.Of(('8', '9'), ('A', 'B'), ('a', 'b'))), Hex, Hex,
            Pattern.Literal("\\u"), D, new Pattern.Chars(CharSet.Of(('C', 'F'), ('c', 'f'))), Hex, Hex)));

    /// <summary>One character of a string's content: unescaped, or one of JSON's escapes.</summary>
    public static Pattern StringChar { get; } = Pattern.AnyOf(
        new Pattern.Chars(Unescaped),
        Pattern.Of(Pattern.Literal("\\"), Pattern.AnyOf(new Pattern.Chars(CharSet.Of(('"', '"'), ('\\', '\\'), ('/', '/'), ('b', 'b'), ('f', 'f'), ('n', 'n'), ('r', 'r'), ('t', 't'))), UnicodeEscape)));

    /// <summary>A string of <paramref name="min"/> to <paramref name="max"/> characters (an escape counts as one).</summary>
    public static Pattern String(int min = 0, int? max = null) => Quoted(new Pattern.Repeat(StringChar, min, max));

    /// <summary><paramref name="content"/> between quotes.</summary>
    public static Pattern Quoted(Pattern content) => Pattern.Of(Pattern.Literal("\""), content, Pattern.Literal("\""));

    public static Pattern Integer { get; } = Pattern.Of(
        Pattern.Optional(Pattern.Literal("-")),
        Pattern.AnyOf(Pattern.Literal("0"), Pattern.Of(new Pattern.Chars(CharSet.Of(('1', '9'))), new Pattern.Repeat(Digit, 0, MaxDigits - 1))));

    public static Pattern Number { get; } = Pattern.Of(
        Integer,
        Pattern.Optional(Pattern.Of(Pattern.Literal("."), new Pattern.Repeat(Digit, 1, MaxDigits))),
        Pattern.Optional(Pattern.Of(new Pattern.Chars(CharSet.Of(('E', 'E'), ('e', 'e'))), Pattern.Optional(new Pattern.Chars(CharSet.Of(('+', '+'), ('-', '-')))), new Pattern.Repeat(Digit, 1, 2))));

    public static Pattern Boolean { get; } = Pattern.AnyOf(Pattern.Literal("true"), Pattern.Literal("false"));

    public static Pattern Null { get; } = Pattern.Literal("null");

    /// <summary>An object with these members in this order (each <c>"name": value</c>), the optional ones skippable.</summary>
    public static Pattern Object(IReadOnlyList<(string Name, Pattern Value, bool Required)> members)
    {
        var open = Pattern.Of(Pattern.Literal("{"), Whitespace);
        var close = Pattern.Literal("}");
        if (members.Count == 0) return Pattern.Of(open, close);
        var list = members.Select(m => (Pattern.Of(Key(m.Name), m.Value), m.Required)).ToList();
        var body = new Pattern.Members(list, Separator);
        // an object whose members are all optional may be empty; the whitespace before '}' follows a member only
        return Pattern.Of(open, body, members.Any(m => m.Required) ? Pattern.Of(Whitespace, close) : Pattern.AnyOf(close, Pattern.Of(Whitespace, close)));
    }

    /// <summary>An object of any members (names any strings) whose values are <paramref name="value"/>.</summary>
    public static Pattern ObjectOf(Pattern value) => Pattern.Of(
        Pattern.Literal("{"), Whitespace,
        Pattern.AnyOf(
            Pattern.Literal("}"),
            Pattern.Of(new Pattern.Separated(Pattern.Of(String(), Pattern.Literal(":"), Whitespace, value), Separator, 1, null), Whitespace, Pattern.Literal("}"))));

    /// <summary>An array of <paramref name="min"/> to <paramref name="max"/> items.</summary>
    public static Pattern Array(Pattern item, int min = 0, int? max = null)
    {
        var open = Pattern.Of(Pattern.Literal("["), Whitespace);
        var close = Pattern.Literal("]");
        if (max == 0) return Pattern.Of(open, close);
        var items = Pattern.Of(new Pattern.Separated(item, Separator, Math.Max(1, min), max), Whitespace, close);
        return min == 0 ? Pattern.Of(open, Pattern.AnyOf(close, items)) : Pattern.Of(open, items);
    }

    /// <summary>Any JSON value whose objects and arrays nest at most <paramref name="depth"/> deep (0: scalars only).</summary>
    public static Pattern AnyValue(int depth)
    {
        var scalars = new List<Pattern> { String(), Number, Boolean, Null };
        if (depth > 0)
        {
            var inner = AnyValue(depth - 1);
            scalars.Add(ObjectOf(inner));
            scalars.Add(Array(inner));
        }
        return Pattern.AnyOf(scalars);
    }

    /// <summary>Exactly this value, written compactly (what <see cref="JsonSerializer"/> writes, UTF-8 unescaped).</summary>
    public static Pattern Literal(JsonElement value) => new Pattern.Text(JsonSerializer.SerializeToUtf8Bytes(value, CompactOptions));

    private static readonly JsonSerializerOptions CompactOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, WriteIndented = false };

    private static Pattern Separator { get; } = Pattern.Of(Pattern.Literal(","), Whitespace);

    private static Pattern Key(string name) => Pattern.Of(
        new Pattern.Text(JsonSerializer.SerializeToUtf8Bytes(name, CompactOptions)), Pattern.Literal(":"), Whitespace);
}
