using System.Text;
using System.Text.RegularExpressions;
using FinQLoRA.Inference.Constraints;

namespace FinQLoRA.Tests.Inference.Constraints;

/// <summary>The regex subset against .NET's own engine (ECMAScript mode: ASCII \d \w \s, as ours), whole-string
/// matching on both sides: on strings drawn from our automaton (every one must match .NET too) and on random strings
/// over the pattern's own characters (both must agree, either way); and the refusals, each with its position.</summary>
public sealed class RegexParserTests
{
    public static readonly TheoryData<string> Patterns =
    [
        "abc", "a|b|cd", "a*", "a+b?", "(ab)*c", "(?:ab|cd){2}", "a{2,4}", "a{3,}", "[a-c]{0,3}x", "[^abc]+",
        @"\d+", @"\d{3}-\d{4}", @"\w+@\w+\.com", @"\s*x\s*", @"[\d.]+", @"-?\d+(\.\d+)?([eE][+-]?\d+)?",
        @"\D\W\S", "(a|ab)(c|bcd)(d*)", "x*?y+?z??", "a{2}?", ".", ".*!", "(yes|no|maybe)", "[a-z0-9_]{1,5}",
        @"\\\.\""\t\n", @"\u00e9+", "[é-ü]+", "[^é]", "é|ü|ß", @"\x41\u0042", "a{,2}", "{}", "a{x}", "[]a]", "[-a]", "[a-]",
        @"(?<year>\d{4})-(?<month>\d{2})", "^start", "end$", "^both$", @"\$\^", "((a|b)*c)+", "(a*)*", "(|a)b", "a||b",
        @"[\w-]+", @"[\s\S]", @"[^\d\s]+", "[A-Fa-f0-9]{2}", @"\bx".Replace(@"\b", ""), "日本語?", "[日-本]+",
    ];

    [Theory]
    [MemberData(nameof(Patterns))]
    public void AcceptsExactlyWhatDotNetMatches(string pattern)
    {
        var ours = Automaton.Regex(pattern);
        var dotnet = new Regex($"^(?:{pattern})\\z", RegexOptions.ECMAScript | RegexOptions.CultureInvariant);

        var drawn = ours.Samples(200, seed: pattern.Length).ToList();
        Assert.NotEmpty(drawn);
        // .NET matches UTF-16 code units, so a character past U+FFFF is two "characters" there: those are left to
        // NonAsciiClassesCoverEveryEncodingLength
        foreach (string s in drawn.Where(s => !s.Any(char.IsSurrogate)))
            Assert.True(dotnet.IsMatch(s), $"{pattern}: ours accepts '{s}', .NET does not");

        string alphabet = new(pattern.Where(c => !char.IsSurrogate(c)).Concat("ab0 é\n-").Distinct().ToArray());
        var random = new Random(pattern.GetHashCode(StringComparison.Ordinal) & 0xffff);
        for (int i = 0; i < 3000; i++)
        {
            var sb = new StringBuilder();
            int length = random.Next(0, 9);
            for (int k = 0; k < length; k++) sb.Append(alphabet[random.Next(alphabet.Length)]);
            string s = sb.ToString();
            bool expected = dotnet.IsMatch(s);
            Assert.True(expected == ours.Matches(s), $"{pattern}: '{Escape(s)}' .NET {expected}, ours {!expected}");
        }
        // also some of the drawn members mutated by one character: mostly non-members, a sharper test of rejection
        foreach (string s in drawn.Where(s => s.Length > 0 && !s.Any(char.IsSurrogate)).Take(50))
        {
            var chars = s.ToCharArray();
            int at = random.Next(chars.Length);
            chars[at] = alphabet[random.Next(alphabet.Length)];
            string m = new(chars);
            Assert.True(dotnet.IsMatch(m) == ours.Matches(m), $"{pattern}: mutated '{Escape(m)}' disagrees");
        }
    }

    private static string Escape(string s) => s.Replace("\n", "\\n").Replace("\t", "\\t");

    [Fact]
    public void NonAsciiClassesCoverEveryEncodingLength()
    {
        // one character of each UTF-8 length, and the negated class: [^a] must take each of them as one character
        var notA = Automaton.Regex("[^a]");
        foreach (string s in new[] { "b", "é", "€", "😀", "\u07FF", "\u0800", "\uFFFD", "\U0010FFFF" }) Assert.True(notA.Matches(s), s);
        Assert.False(notA.Matches("a"));
        Assert.False(notA.Matches("bb"));
        var range = Automaton.Regex("[\u00e0-\U0001F600]");
        Assert.True(range.Matches("\u00e0") && range.Matches("\uffff") && range.Matches("\U00010000") && range.Matches("\U0001F600"));
        Assert.False(range.Matches("\u00df") || range.Matches("\U0001F601"));
        // every drawn member of "any string" is valid UTF-8 (the decoder throws on anything else)
        Assert.Equal(100, Automaton.Regex("[\\s\\S]*").Samples(100, seed: 1).Count());
    }

    [Theory]
    [InlineData(@"a\1", "backreference '\\1'", 1)]
    [InlineData(@"(?=a)b", "lookaround", 0)]
    [InlineData(@"x(?<!a)b", "lookaround", 1)]
    [InlineData(@"\bword", "word boundary '\\b'", 0)]
    [InlineData(@"a^b", "anchor '^'", 1)]
    [InlineData(@"a$b", "anchor '$'", 1)]
    [InlineData(@"(?i)abc", "inline flags", 0)]
    [InlineData(@"\p{L}", "Unicode property class", 0)]
    [InlineData(@"ab(c", "missing ')'", 2)]
    [InlineData(@"ab)c", "unmatched ')'", 2)]
    [InlineData(@"*a", "nothing to repeat", 0)]
    [InlineData(@"a**", "nested quantifier", 2)]
    [InlineData(@"[z-a]", "out of order", 1)]
    [InlineData(@"[abc", "missing ']'", 0)]
    [InlineData(@"a{5,2}", "maximum below its minimum", 1)]
    [InlineData(@"a{1001}", "above the supported 1000", 1)]
    [InlineData(@"abc\", "lone '\\'", 3)]
    [InlineData(@"\u12", "4 hex digits", 0)]
    [InlineData(@"\q", "unknown escape", 0)]
    public void RefusesWithTheConstructAndItsPosition(string pattern, string what, int position)
    {
        var e = Assert.Throws<ConstraintException>(() => RegexParser.Parse(pattern));
        Assert.Contains(what, e.Message);
        Assert.Contains($"at position {position} of the regex", e.Message);
        // .NET agrees that these are errors or unsupported semantics; at least the syntax errors are errors there too
        if (what is "missing ')'" or "unmatched ')'" or "nothing to repeat" or "nested quantifier" or "out of order" or "missing ']'")
            Assert.ThrowsAny<ArgumentException>(() => new Regex(pattern));
    }
}
